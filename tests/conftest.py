"""Tests marked ``cuda`` need a GPU: without one they are skipped, with the reason; ``pytest -m
cuda`` runs only them (on a machine that has one)."""

from __future__ import annotations

import pytest
import torch


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped without one; run them with pytest -m cuda)")


def pytest_collection_modifyitems(config, items) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none is visible to torch here)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
