"""Packaging: what a wheel ships must be importable under names that are ours alone."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _package_dirs() -> set[str]:
    """Every folder holding Python modules, as the import name it installs under."""
    mapping = {v.rstrip("/"): k for k, v in _pyproject()["tool"]["setuptools"]["package-dir"].items()}
    found = set()
    for top in ("aknet_cli", *mapping):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).as_posix()
            head, _, rest = rel.partition("/")
            name = mapping.get(head, head) + ("." + rest.replace("/", ".") if rest else "")
            if "__pycache__" not in name:
                found.add(name)
    return found


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    missing = _package_dirs() - listed
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    assert listed <= _package_dirs(), f"listed but absent: {sorted(listed - _package_dirs())}"


def test_no_generic_top_level_import_name():
    tops = {name.split(".")[0] for name in _pyproject()["tool"]["setuptools"]["packages"]}
    # Every top-level import package starts with our name: a generic one such as `backbones`
    # is already taken on the package index and would be overwritten by (or overwrite) it.
    assert tops == {"aknet_cli", "aknet_backbones"}


def test_builtin_backbones_are_registered_under_the_installed_name():
    eps = _pyproject()["project"]["entry-points"]["aknet.backbones"]
    assert eps and all(target.startswith("aknet_backbones.") for target in eps.values())
    from aknet_cli._registry import get_backbone_factory

    factory = get_backbone_factory("tsm_resnet18")
    assert factory.__module__ == "aknet_backbones.tsm"


def test_extras_users_expect():
    extras = _pyproject()["project"]["optional-dependencies"]
    assert {"export", "tensorboard", "dev", "torchcodec"} <= set(extras)
    assert any(req.startswith("torchcodec") for req in extras["torchcodec"])
    assert any(req.startswith("torchcodec") for req in extras["dev"])  # `make test` exercises it
    assert any(req.startswith("tensorboard") for req in extras["dev"])  # the tests read its event files
    assert any(req.startswith("onnxruntime") for req in extras["export"])
