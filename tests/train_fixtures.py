"""Tiny training runs for the engine tests: a synth-sth of a few 32² clips and a config."""

from __future__ import annotations

from pathlib import Path

import torch

TINY = """
name = "tiny"
[model]
backbone = "{backbone}"
num_segments = 4
dropout = {dropout}
[data]
dataset = "{dataset}"
resize = {resize}
crop = {crop}
resize_mode = "square"
num_workers = 0
[optim]
name = "{optim}"
lr = {lr}
base_batch_size = 4
batch_size = 4
epochs = 2
milestones = [1]
[train]
seed = 3
amp = false
"""


def make_synth(root: Path, *, classes: int = 4, train: int = 4, val: int = 2, test: int = 2, size: int = 32) -> Path:
    """A prepared synth-sth under ``root/synth`` (``classes × train`` training clips)."""
    from aknet_cli.data.synthetic import SynthConfig, prepare_synthetic

    out = root / "synth"
    prepare_synthetic(SynthConfig(classes=classes, train_per_class=train, val_per_class=val, test_per_class=test, size=size,
                                 frames=8),
                      out=out, workers=1)
    return out


def write_config(path: Path, dataset: Path, *, backbone: str = "resnet18", dropout: float = 0.5, crop: int = 32,
                 optim: str = "adamw", lr: float = 0.001) -> Path:
    path.write_text(TINY.format(backbone=backbone, dropout=dropout, dataset=dataset, resize=crop + 4, crop=crop,
                                optim=optim, lr=lr))
    return path


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


class Killed(Exception):
    """Stands for a SIGKILL between two steps: nothing after it runs."""


def kill_at(step: int):
    def callback(global_step: int) -> None:
        if global_step == step:
            raise Killed
    return callback
