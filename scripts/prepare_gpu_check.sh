#!/usr/bin/env bash
# Prepares gpu_run/ (ignored by git) for ../shared/tools/gpu_check.sh on a lent GPU machine.
#
# That machine has no package registry and a system Python 3.12 with its own CUDA torch but no
# fvcore: the check's offline fallback installs aknet --no-deps into that Python and takes
# fvcore, iopath, yacs and termcolor from WHEELHOUSE. This builds that wheelhouse (pure-Python
# wheels, plus PyYAML and SciPy built for CPython 3.12) and an aknet wheel, and writes
# gpu_run/gpu_check.sh: the shared script with the corrections this version of the engine needs
# (each correction fails loudly if the shared script no longer holds the text it replaces).
#
#   bash scripts/prepare_gpu_check.sh
#   # then, with the device tool: carry ["gpu_run"], command
#   #   WHEELHOUSE=$PWD/gpu_run/wheels OUT=$OUT bash gpu_run/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SHARED=${SHARED:-../shared/tools/gpu_check.sh}
OUT=gpu_run
rm -rf "$OUT"
mkdir -p "$OUT/wheels"
"$PY" -m pip wheel --quiet --no-deps -w "$OUT/wheels" fvcore iopath yacs termcolor portalocker tabulate 2>&1 \
    | grep -v "^WARNING: Location" || true
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$OUT/wheels" pyyaml scipy 2>&1 \
    | grep -v "^WARNING: Location" || true
"$PY" -m pip wheel --quiet --no-deps -w "$OUT/wheels" . 2>&1 | grep -v "^WARNING: Location" || true
rm -rf aknet.egg-info build  # setuptools leaves them in the tree; a stale egg-info shadows the installed metadata
"$PY" - "$SHARED" "$OUT/gpu_check.sh" <<'PY'
"""Copy the shared gpu_check.sh with the engine's renamed internals and checkpoint layout."""
import sys

text = open(sys.argv[1]).read()
corrections = [
    # the loss terms left trainer.py with the step loop (engine/loop.py)
    ("from aknet_cli.engine.trainer import _loss_terms",
     "from aknet_cli.engine.loop import loss_terms as _loss_terms"),
    # last.pt holds every rank's RNG streams ({"world_size", "ranks": [...]}, each with its GPU's
    # generator): an 8-GPU node's checkpoint has 8 ranks, not 8 CUDA states of rank 0
    ('res["saved_cuda_rng_states"] = len(state["rng"]["cuda"])',
     'res["saved_cuda_rng_states"] = sum(r["cuda"] is not None for r in state["rng"]["ranks"])'),
    ('ck["train_state"]["rng"]["cuda"] = list(ck["train_state"]["rng"]["cuda"]) * 8',
     'ck["train_state"]["rng"] = {"world_size": 8, "ranks": list(ck["train_state"]["rng"]["ranks"]) * 8}'),
    # checkpoints carry a SHA-256 of their tensors: an edited one is written again with its digest
    ('torch.save(ck, work / "last_from_8_gpus.pt")',
     'from aknet_cli.checkpoints.format import save_checkpoint\n'
     'save_checkpoint(work / "last_from_8_gpus.pt", kind=ck["kind"], config=ck["config"], '
     'state_dict=ck["state_dict"], meta=ck["meta"], train_state=ck["train_state"])'),
]
for old, new in corrections:
    if text.count(old) != 1:
        sys.exit(f"prepare_gpu_check: the shared script no longer holds {old!r}; update the corrections")
    text = text.replace(old, new)
open(sys.argv[2], "w").write(text)
PY
chmod +x "$OUT/gpu_check.sh"
du -sh "$OUT"
ls "$OUT/wheels"
