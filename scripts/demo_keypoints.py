"""Demo step: run an (untrained) AK-Net on one clip and print where its keypoints fall.

Usage: python scripts/demo_keypoints.py [DATASET_DIR]

With a prepared dataset (e.g. the synthetic one) the clip is its first validation video;
without one a random clip is used. Training is not part of this step yet, so the keypoints
show the mechanics (N per clip, a different count per frame, ranked order), not a learned
attention.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import torch

from aknet_cli import build_aknet


def load_clip(dataset: str | None, num_segments: int) -> tuple[torch.Tensor, str]:
    if dataset:
        try:
            from aknet_cli.data.dataset import VideoDataset
            from aknet_cli.data.transforms import build_transform
        except ImportError:
            pass
        else:
            ds = VideoDataset(dataset, "val", num_segments=num_segments, train=False,
                              transform=build_transform(train=False, resize=128, crop=112))
            clip, label = ds[0]
            return clip.unsqueeze(0), f"{dataset} val[0] (label {label})"
    return torch.randn(1, num_segments, 3, 112, 112), "a random clip"


def main() -> None:
    torch.manual_seed(0)
    model = build_aknet("tsm_resnet18", split="res3", alpha=0.3, num_classes=12, num_segments=8).eval()
    clip, source = load_clip(sys.argv[1] if len(sys.argv) > 1 else None, 8)
    start = time.perf_counter()
    with torch.no_grad():
        logits, keypoints = model(clip, return_keypoints=True)
    elapsed = time.perf_counter() - start
    per_frame = Counter(keypoints[0, :, 0].tolist())
    print(f"AK-Net (tsm_resnet18, split res3, α=0.3) on {source}: input {tuple(clip.shape)}")
    print(f"  logits {tuple(logits.shape)} in {elapsed * 1000:.0f} ms; {keypoints.shape[1]} keypoints")
    print("  keypoints per frame: " + ", ".join(f"t{t}={per_frame.get(t, 0)}" for t in range(8)))
    print("  first 5 in ranked order (t, y, x): " + ", ".join(str(tuple(k)) for k in keypoints[0, :5].tolist()))


if __name__ == "__main__":
    main()
