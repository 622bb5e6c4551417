#!/usr/bin/env bash
# `make demo`: the main job on the embedded synthetic data, on a CPU, in a few minutes.
set -euo pipefail
AKNET=${1:-aknet}
OUT=${2:-demo_out}
PY="$(dirname "$AKNET")/python"
mkdir -p "$OUT"

echo "== 1. registered backbones"
"$AKNET" backbones

echo "== 2. the synthetic Something-Something-like dataset (official V1 layout, then prepared)"
"$AKNET" prepare synthetic --out "$OUT/synth" --force

echo "== 3. FLOPs: TSM-R50 vs AK-Net-TSM-R50 (res4, α=0.3), the paper's Table II setting"
"$AKNET" flops --table ii

echo "== 4. AK-Net forward pass on a synthetic clip, keypoints printed"
"$PY" scripts/demo_keypoints.py "$OUT/synth"
