"""Loading throughput and frame-exactness of every video backend, on the codecs of our datasets.

Builds four synthetic datasets (256x256 frames, 32 frames per clip) under a work folder:

* ``vp9``  Sth-Sth V2's codec: the synthetic WebM clips re-encoded with PyAV's libvpx-vp9;
* ``vfr``  the same clips as VP9 WebM with irregular frame gaps (20-200 ms): variable frame rate;
* ``h264`` Diving48's codec: the synthetic generator's H.264 MP4;
* ``jpeg`` Sth-Sth V1's frame folders (read with PIL whatever the backend).

Then, in rounds that interleave every (format, backend, workers) setting so that load from
other processes hits them alike, times a training DataLoader (8 segments, resize 256 + random
crop 224, batch 1) with one and with two worker processes and reports the median clips/s.
Exactness: every frame the loader would sample (the test centres and one random training draw
per clip) is decoded by each backend and compared, pixel by pixel, with an independent
sequential PyAV decode of the whole file (:mod:`aknet_cli.data.decode_exactness`). The last line names the fastest backend that is
exact on every format (what ``video_io.BACKENDS`` should list first). Run:

    python benchmarks/bench_loading.py [--quick] [--rounds 3] [--clips 96] [--json results.json]

``--quick`` (one round, 8 clips per setting, 8 clips per dataset) checks that everything runs;
only the full run's figures are worth quoting. Report the CPU and the load printed on top.
"""

from __future__ import annotations

import argparse
import fractions
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from aknet_cli._machine import cpu_model
from aknet_cli.data import build_dataloader
from aknet_cli.data.decode_exactness import SEGMENTS, exactness
from aknet_cli.data.formats import read_sthv2
from aknet_cli.data.prepare import prepare_release
from aknet_cli.data.synthetic import SynthConfig, prepare_synthetic
from aknet_cli.data.video_io import BACKENDS, backend_installed

WORKER_COUNTS = (1, 2)
VIDEO_FORMATS = ("vp9", "vfr", "h264")


# --------------------------------------------------------------------------- datasets
def _reencode_vp9(source: Path, target: Path, *, variable_rate: bool, seed: int) -> None:
    """Decode ``source`` and write its frames as VP9 WebM (libvpx-vp9), optionally with VFR gaps."""
    import av

    with av.open(str(source)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    gaps = np.random.default_rng(seed).choice([20, 200], size=len(frames)) if variable_rate else None
    with av.open(str(target), "w") as container:
        stream = container.add_stream("libvpx-vp9", rate=12)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"deadline": "good", "cpu-used": "4", "threads": "1"}
        if variable_rate:
            stream.codec_context.time_base = fractions.Fraction(1, 1000)
        pts = 0
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if variable_rate:
                frame.pts, frame.time_base = pts, fractions.Fraction(1, 1000)
                pts += int(gaps[i])
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def build_datasets(workdir: Path, *, per_class: int) -> dict[str, Path]:
    """``{format: prepared dataset folder}``; reuses folders an earlier run left in ``workdir``."""
    base = dict(classes=2, train_per_class=per_class, val_per_class=1, size=256, frames=32, seed=0)
    built = {}
    for name, fmt in (("jpeg", "sthv1"), ("h264", "diving48"), ("vp8", "sthv2")):
        out = workdir / name
        if not (out / "dataset.json").is_file():
            prepare_synthetic(SynthConfig(**base, format=fmt), out=out, force=True)
        built[name] = out
    for name, variable_rate in (("vp9", False), ("vfr", True)):
        out, raw = workdir / name, workdir / f"{name}-raw"
        if not (out / "dataset.json").is_file():
            shutil.rmtree(raw, ignore_errors=True)
            shutil.copytree(workdir / "vp8" / "raw", raw, ignore=shutil.ignore_patterns("*.webm"))
            for i, source in enumerate(sorted((workdir / "vp8" / "raw").rglob("*.webm"))):
                target = raw / source.relative_to(workdir / "vp8" / "raw")
                _reencode_vp9(source, target, variable_rate=variable_rate, seed=i)
            prepare_release(read_sthv2(raw, videos_dir=_videos_dir(raw)), out=out, force=True)
        built[name] = out
    del built["vp8"]
    return built


def _videos_dir(raw: Path) -> str | None:
    folders = {p.parent for p in raw.rglob("*.webm")}
    folder = folders.pop()
    return None if folder == raw else str(folder.relative_to(raw))


# --------------------------------------------------------------------------- throughput
def clips_per_second(dataset: Path, *, backend: str, workers: int, clips: int) -> float:
    loader = build_dataloader(dataset, "train", num_segments=SEGMENTS, batch_size=1, train=True,
                              num_workers=workers, backend=backend, seed=0)
    iterator = iter(loader)
    next(iterator)  # worker start-up is not throughput
    start = time.perf_counter()
    for _ in range(clips):
        try:
            next(iterator)
        except StopIteration:
            iterator = iter(loader)
            next(iterator)
    rate = clips / (time.perf_counter() - start)
    del iterator, loader
    return rate


def settings(backends: list[str]) -> list[tuple[str, str]]:
    """``(format, backend)`` pairs timed; JPEG folders once (PIL reads them for every backend)."""
    return [(fmt, backend) for fmt in VIDEO_FORMATS for backend in backends] + [("jpeg", backends[0])]


def measure(datasets: dict[str, Path], backends: list[str], *, rounds: int, clips: int) -> dict:
    samples: dict[str, list[float]] = {}
    for round_ in range(rounds):
        order = settings(backends)
        if round_ % 2:  # alternate the order too, so no setting always runs first
            order = order[::-1]
        for fmt, backend in order:
            for workers in WORKER_COUNTS:
                rate = clips_per_second(datasets[fmt], backend=backend, workers=workers, clips=clips)
                samples.setdefault(f"{fmt}/{backend}/{workers}", []).append(rate)
                print(f"  round {round_ + 1}: {fmt:5s} {backend:10s} workers={workers}: {rate:6.1f} clips/s", flush=True)
    return {key: statistics.median(values) for key, values in samples.items()} | {"_samples": samples}


# --------------------------------------------------------------------------- report
def machine() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "load": list(os.getloadavg())}


def fastest_exact(rates: dict, exact: dict, backends: list[str]) -> str | None:
    """The backend exact on every video format with the highest mean clips/s over formats and workers."""
    def ok(backend: str) -> bool:
        return all(exact[f"{fmt}/{backend}"]["wrong"] == 0 and exact[f"{fmt}/{backend}"]["failed"] == 0
                   for fmt in VIDEO_FORMATS)

    def speed(backend: str) -> float:
        return statistics.mean(rates[f"{fmt}/{backend}/{w}"] for fmt in VIDEO_FORMATS for w in WORKER_COUNTS)

    candidates = [b for b in backends if ok(b)]
    return max(candidates, key=speed) if candidates else None


def table(rates: dict, exact: dict, backends: list[str]) -> str:
    """The markdown table docs/data.md shows: clips/s at 1 and 2 workers, and exactness."""
    reference = "decord" if "decord" in backends else backends[0]
    lines = ["| format | backend | 1 worker | 2 workers | vs " + reference + " (1 / 2) | exact frames |",
             "|---|---|---:|---:|---:|---|"]
    names = {"vp9": "VP9 WebM", "vfr": "VP9 WebM, VFR", "h264": "H.264 MP4", "jpeg": "JPEG folders"}
    for fmt, backend in settings(backends):
        one, two = (rates[f"{fmt}/{backend}/{w}"] for w in WORKER_COUNTS)
        if fmt == "jpeg":
            lines.append(f"| {names[fmt]} | PIL (any) | {one:.1f} | {two:.1f} | | (not decoded by a backend) |")
            continue
        base = [rates[f"{fmt}/{reference}/{w}"] for w in WORKER_COUNTS]
        check = exact[f"{fmt}/{backend}"]
        verdict = ("all " if check["wrong"] == 0 and not check["failed"] else "") + \
            f"{check['frames'] - check['wrong']}/{check['frames']}" + (f", {check['failed']} clips failed" if check["failed"] else "")
        lines.append(f"| {names[fmt]} | {backend} | {one:.1f} | {two:.1f} | {one / base[0]:.2f} / {two / base[1]:.2f} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, few clips: checks that it runs")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    parser.add_argument("--clips", type=int, default=96, help="clips timed per setting and round")
    parser.add_argument("--per-class", type=int, default=8, help="training clips per class (2 classes)")
    parser.add_argument("--workdir", type=Path, default=None, help="keeps the datasets between runs")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.clips, args.per_class = 1, 8, 4
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="aknet-bench-loading-"))
    backends = [b for b in BACKENDS if backend_installed(b)]
    before = machine()
    print(f"{before['cpu']}, {before['cores']} cores, load {before['load'][0]:.2f}; backends: {', '.join(backends)}")
    datasets = build_datasets(workdir, per_class=args.per_class)
    exact = {f"{fmt}/{b}": exactness(datasets[fmt], b) for fmt in VIDEO_FORMATS for b in backends}
    rates = measure(datasets, backends, rounds=args.rounds, clips=args.clips)
    after = machine()
    choice = fastest_exact(rates, exact, backends)
    print(f"\n8 segments x 224², batch 1, median of {args.rounds} interleaved rounds of {args.clips} clips; "
          f"load {before['load'][0]:.2f} before, {after['load'][0]:.2f} after\n")
    print(table(rates, exact, backends))
    print(f"\nfastest backend exact on every format: {choice}")
    if args.json:
        payload = {"machine": before, "load_after": after["load"], "rounds": args.rounds, "clips": args.clips,
                   "rates": {k: v for k, v in rates.items() if k != "_samples"}, "samples": rates["_samples"],
                   "exactness": exact, "fastest_exact": choice}
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
