"""Forward latency of a plain backbone and AK-Net, and issue #11's speed goals.

One implementation: this runs `aknet bench` (aknet_cli.analysis.bench) and then checks the
goals that belong in a benchmark, never in a timed test:

* at every split, AK-Net's time per GFLOP after the split within 1.1x the backbone's own;
* at res4, AK-Net's latency ratio no more than 0.04 above F's own ratio (the floor).

Usage: python benchmarks/bench_forward.py [aknet bench options], e.g.
       python benchmarks/bench_forward.py --backbone tsm_resnet50 --split none,res2,res3,res4 --batch 1,8
Exit status 0 when every goal is met, 1 otherwise (the table says by how much).
"""

from __future__ import annotations

import json
import subprocess
import sys

FACTOR_GOAL = 1.1
FLOOR_MARGIN = 0.04


def main(argv: list[str]) -> int:
    out = subprocess.run([sys.executable, "-m", "aknet_cli.cli.main", "bench", *argv, "--json"],
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    env = result["environment"]
    print(f"device {env['device']}, {env['threads']} threads, torch {env['torch']}")
    met = True
    for r in result["rows"]:
        if r["split"] == "none":
            print(f"{r['model']:>22s} batch {r['batch']:>2d}: {r['latency_ms_median']:8.1f} ms")
            continue
        factor = r["after_split_factor"]
        ok_factor = factor is not None and factor <= FACTOR_GOAL
        line = (f"{'AK-Net ' + r['split']:>22s} batch {r['batch']:>2d}: {r['latency_ms_median']:8.1f} ms, "
                f"ratio {r['latency_ratio']:.2f} (floor {r['floor_ratio']:.2f}, FLOPs {r['flops_ratio']:.2f}), "
                f"after-split factor {'x%.2f' % factor if factor is not None else 'n/a (noise: F timed slower than the backbone)'}"
                f" [{'ok' if ok_factor else 'MISS'} <= {FACTOR_GOAL}]")
        met &= ok_factor
        if r["split"] == "res4":
            gap = r["latency_ratio"] - r["floor_ratio"]
            ok_gap = gap <= FLOOR_MARGIN
            line += f", {gap:+.2f} above the floor [{'ok' if ok_gap else 'MISS'} <= {FLOOR_MARGIN}]"
            met &= ok_gap
        print(line)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
