"""`aknet prepare` throughput: clips/s counting frames with 1, 2, ... worker processes.

Writes a synthetic release once (Sth-Sth V2 layout: VP8 WebM, or Diving48: MP4) of
``--clips`` clips at ``--size``² and ``--frames`` frames, lists each clip ``--tile`` times under
new ids (hard links: rendering is far slower than counting), then prepares it repeatedly with each
worker count, *interleaved* (1, 2, 1, 2, ...) so that load from other processes on a shared
machine hits every setting alike; prints the median and range of clips/s per setting. Run:

    python benchmarks/bench_prepare.py [--clips 48] [--tile 6] [--workers 1,2] [--repeats 3] [--format sthv2]

The rate includes starting the worker processes (spawned, no torch imported; ~1 s per pool
here) once per run, as a user's `aknet prepare` pays it.

Measured 2026-11-25 on the project's 2-core CPU machine, shared with other jobs (load average
10-12 throughout, so no setting had an idle core), 1000 clips (50 distinct, 224², 48 frames,
VP8 WebM), decord, interleaved runs:

    workers   before (threads)   after (processes x 2 threads)
    1         48-54 clips/s      131-157 clips/s (median of 3: 151)
    2         79-101 clips/s     110-137 clips/s (median of 3: 129)

At one worker the gain comes mostly from two counting threads per process (decord decodes
in its own thread, so a single caller leaves a core idle much of the time). A second process did not help here: the two cores were already busy, and a
second pool process only adds start-up and contention. Scaling across processes needs a
machine with idle cores to be measured; it was not measured here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from aknet_cli.data.formats import READERS
from aknet_cli.data.prepare import default_workers, prepare_release
from aknet_cli.data.synthetic import SynthConfig, generate_raw
from aknet_cli.data.video_io import BACKENDS


def _tile(raw: Path, fmt: str, ext: str, times: int) -> None:
    """List every clip ``times`` times: copy ``k`` of clip ``id`` is ``id-k``, a hard link."""
    import os

    from aknet_cli.data.formats import diving48, sthv2

    files = sthv2.SPLIT_FILES if fmt == "sthv2" else diving48.SPLIT_FILES
    key, media = ("id", raw) if fmt == "sthv2" else ("vid_name", raw / "rgb")
    for split, name in files.items():
        path = raw / name
        if not path.is_file():
            continue
        records = json.loads(path.read_text())
        tiled = []
        for record in records:
            for k in range(times):
                copy = dict(record, **{key: f"{record[key]}-{k}"})
                target = media / f"{copy[key]}{ext}"
                if not target.exists():
                    os.link(media / f"{record[key]}{ext}", target)
                tiled.append(copy)
        path.write_text(json.dumps(tiled))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=48, help="clips in the release")
    parser.add_argument("--tile", type=int, default=6, help="times each clip is listed (hard-linked)")
    parser.add_argument("--size", type=int, default=224, help="frame side in pixels")
    parser.add_argument("--frames", type=int, default=48, help="frames per clip")
    parser.add_argument("--format", default="sthv2", choices=("sthv2", "diving48"))
    parser.add_argument("--backend", default=None, choices=BACKENDS, help="[default: the fastest exact installed]")
    parser.add_argument("--workers", default=None, help="comma-separated worker counts [default: 1,2,...,all CPUs]")
    parser.add_argument("--repeats", type=int, default=3, help="runs per worker count")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")] if args.workers else sorted({1, 2, default_workers()})
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="aknet-bench-prepare-"))
    classes = 2
    per_class = max(1, args.clips // classes)
    config = SynthConfig(classes=classes, train_per_class=per_class, val_per_class=1, size=args.size,
                         frames=args.frames, format=args.format)
    raw = workdir / "raw"
    stamp = raw / "bench-release.json"  # a --workdir holding the same release is reused as is
    wanted = json.dumps({"config": asdict(config), "tile": args.tile}, sort_keys=True)
    if stamp.is_file() and stamp.read_text() == wanted:
        extension = json.loads((raw / "bench-extension.json").read_text())
        print(f"reusing the release under {raw}")
    else:
        start = time.perf_counter()
        extension = generate_raw(config, raw)["extension"] or ".mp4"
        print(f"generated {config.classes * (per_class + 1)} clips ({args.format}, {args.size}², {args.frames} frames) "
              f"in {time.perf_counter() - start:.0f} s under {raw}")
        _tile(raw, args.format, extension, args.tile)
        (raw / "bench-extension.json").write_text(json.dumps(extension))
        stamp.write_text(wanted)
    options = {"extension": extension} if args.format == "sthv2" else {}
    rates: dict[int, list[float]] = {w: [] for w in counts}
    for _ in range(args.repeats):
        for workers in counts:  # interleaved: machine load drifts, so no setting gets a quiet spell alone
            release = READERS[args.format](raw, **options)
            total = sum(len(entries) for entries in release.splits.values())
            start = time.perf_counter()
            summary = prepare_release(release, out=workdir / f"out{workers}", workers=workers, backend=args.backend,
                                      force=True)
            elapsed = time.perf_counter() - start
            assert not summary.skipped, summary.skipped
            rates[workers].append(total / elapsed)
    print(f"backend {args.backend}, {total} clips, {args.repeats} interleaved runs each; CPUs available: {default_workers()}")
    for workers, values in rates.items():
        print(f"  workers={workers}: {statistics.median(values):6.1f} clips/s  (min {min(values):.1f}, max {max(values):.1f})")


if __name__ == "__main__":
    main()
