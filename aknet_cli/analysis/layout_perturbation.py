"""Perturbations that destroy the layout a trained model could use, hooked into its forward.

AK-Net's full model adds layout over Table VI's baseline: the ranking (eq. 7) puts spatial
neighbours next to each other in the 1-D sequence and the transform (eqs. 8-10) reads each
point's coordinates. These hooks take that layout away, one kind at a time, so that a trained
model can be scored without it (``studies/keypoint_order_sensitivity.py``,
``studies/transform_coordinate_scale.py``):

* ``points``: the points in a random order per clip, each keeping its own coordinates;
* ``coords``: the points in place, each with another point's coordinates of the same clip;
* ``coords_clip``: the points in place with the next clip's coordinates, rank for rank;
* ``bypass``: the position module hands its input on unchanged;
* ``layout``: a 2-D stage's output with its ``H·W`` positions permuted, one permutation per
  clip for every frame (the temporal modules still see each position's own history).
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..engine import evaluate as engine_evaluate
from ..engine.evaluate import correct_per_clip_from_csv

SHUFFLE_SEED = 0
MODES = ("points", "coords", "coords_clip", "bypass", "layout")


def _random_orders(batch: int, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(batch, n, generator=generator).argsort(dim=1)


def selector_hook(mode: str, generator: torch.Generator):
    """A forward hook on ``KeypointSelector`` that permutes what it returns, per clip."""
    def hook(_module, _inputs, output):
        points, coords = output
        if mode == "coords_clip":
            return points, coords.roll(1, dims=0)
        order = _random_orders(points.shape[0], points.shape[2], generator).to(points.device)
        shuffled_coords = coords.gather(1, order.unsqueeze(-1).expand_as(coords))
        if mode == "coords":
            return points, shuffled_coords
        return points.gather(2, order.unsqueeze(1).expand_as(points)), shuffled_coords
    return hook


def layout_hook(num_segments: int, generator: torch.Generator):
    """A forward hook on a 2-D stage: one permutation of the positions per clip, all frames alike."""
    def hook(_module, _inputs, output):
        bt, c, h, w = output.shape
        order = _random_orders(bt // num_segments, h * w, generator).to(output.device)
        order = order.repeat_interleave(num_segments, dim=0)
        flat = output.reshape(bt, c, h * w)
        return flat.gather(2, order.unsqueeze(1).expand_as(flat)).reshape(bt, c, h, w)
    return hook


def bypass_hook(_module, inputs, _output):
    """A forward hook that hands a module's first input on as its output."""
    return inputs[0]


@contextlib.contextmanager
def perturbed_loading(mode: str, stage: str | None = None):
    """While active, every model ``evaluate`` loads gets the hook for ``mode`` (or none for ``trained``)."""
    original = engine_evaluate.build_model  # what evaluate() builds each checkpoint's model with
    generator = torch.Generator().manual_seed(SHUFFLE_SEED)

    def build(*args, **kwargs):
        model = original(*args, **kwargs)
        if mode in ("points", "coords", "coords_clip"):
            model.selector.register_forward_hook(selector_hook(mode, generator))
        elif mode == "bypass":
            model.position.register_forward_hook(bypass_hook)
        elif mode == "layout":
            model.stages[stage].register_forward_hook(layout_hook(model.num_segments, generator))
        return model

    engine_evaluate.build_model = build
    try:
        yield
    finally:
        engine_evaluate.build_model = original


def correctness(checkpoint: Path, data: str, mode: str, stage: str | None = None) -> np.ndarray:
    """1/0 test top-1 per clip of ``checkpoint`` under ``mode``, in the split's order."""
    with tempfile.TemporaryDirectory() as out, perturbed_loading(mode, stage):
        engine_evaluate.evaluate(checkpoint, data, split="test", out=out, num_workers=1, progress=False)
        return correct_per_clip_from_csv(Path(out) / "predictions.csv")
