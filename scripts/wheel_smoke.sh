#!/usr/bin/env bash
# Builds the wheel, installs it (not editable, --no-deps) into a throwaway environment that
# reuses the test environment's packages, and runs the CLI from outside the checkout: what a
# user who `pip install`s aknet gets, not what the repository happens to contain.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
REPO=$(pwd)
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

"$PY" -m pip wheel --quiet --no-deps --wheel-dir "$SCRATCH/dist" "$REPO" 2>&1 | grep -v "^WARNING: Location" || true
WHEEL=$(ls "$SCRATCH"/dist/aknet-*.whl)

# Top-level import names in the wheel: only ours.
"$PY" - "$WHEEL" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
tops = sorted({n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))})
print("wheel top-level names:", ", ".join(tops))
assert tops == ["aknet_backbones", "aknet_cli"], tops
configs = [n for n in names if n.startswith("aknet_cli/configs/") and n.endswith(".toml")]
print("configs in the wheel:", len(configs))
PY

# A throwaway venv that sees the test environment's packages through a .pth line (so torch
# is not installed twice) but not its editable aknet: .pth files of a directory added that
# way are not executed.
"$PY" -m venv --without-pip "$SCRATCH/venv"
SITE=$("$SCRATCH/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$SITE/test-env-packages.pth"
"$PY" -m pip --python "$SCRATCH/venv/bin/python" install --quiet --no-deps "$WHEEL" 2>&1 | grep -v "^WARNING: Location" || true

cd "$SCRATCH"
AK="$SCRATCH/venv/bin/aknet"
"$SCRATCH/venv/bin/python" - <<'PY'
import aknet_cli, aknet_backbones
for mod in (aknet_cli, aknet_backbones):
    assert "site-packages" in mod.__file__, f"{mod.__name__} imported from {mod.__file__}, not the wheel"
print("imports from the wheel:", aknet_cli.__file__)
PY
"$AK" --version
"$AK" backbones --json | "$SCRATCH/venv/bin/python" -c '
import json, sys
rows = {r["name"]: r for r in json.load(sys.stdin)}
want = {"resnet18", "resnet50", "tsm_resnet18", "tsm_resnet50", "tdn_resnet18", "tdn_resnet50"}
assert want <= set(rows), sorted(rows)
assert all(rows[n]["target"].startswith("aknet_backbones.") for n in want)
print("backbones:", ", ".join(sorted(rows)))'
"$AK" flops --backbone resnet18 --size 64 --json | "$SCRATCH/venv/bin/python" -c '
import json, sys
out = json.load(sys.stdin)
print("flops --json keys:", ", ".join(sorted(out))[:200])'
if "$AK" train --help >/dev/null 2>&1; then
    "$AK" train --list-configs
fi
echo "wheel smoke test passed"
