"""FLOP tables the way the paper's tables do: plain backbones and AK-Net per split, Tables I
and II, counted with :mod:`aknet_cli.models.flop_count` (the convention and the selection ops'
cost model are stated there).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import torch
from torch import nn

from ..exceptions import ConfigError
from ..models import count_parameters
from ..models.flop_count import (  # noqa: F401  (re-exported: the analysis API counts through these)
    CONVENTION, COST_MODEL, EXTRA_HANDLES, FlopReport, Part, clip_input, count_model, flop_analysis,
)
from . import paper

SPLITS = ("none", "res2", "res3", "res4")
MODES = ("inference", "train")

#: Table II's rows that ``flops --table ii`` counts: method -> (backbone, split, paper GFLOPs).
#: The numbers come from :mod:`aknet_cli.analysis.paper` (typed once, there).
PAPER_TABLE_II: dict[str, tuple[str, str, float]] = paper.table_ii_counted()


# ------------------------------------------------------------------------- entry point
def validate(*, split: str, alpha: float, frames: int, size: int, mode: str, num_classes: int,
             options: Mapping[str, Any] | None = None) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if not (0.0 < float(alpha) <= 1.0) or math.isnan(float(alpha)):
        raise ConfigError(f"--alpha must be in (0, 1], got {alpha}")
    if frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {frames}")
    if size < 32:
        raise ConfigError(f"--size must be >= 32 pixels, got {size}")
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if num_classes < 1:
        raise ConfigError(f"--num-classes must be >= 1, got {num_classes}")
    if options:
        from ..models.aknet import AKNetConfig

        settable = set(AKNetConfig.__dataclass_fields__) - {"split", "alpha"}
        unknown = sorted(set(options) - settable)
        if unknown:
            raise ConfigError(f"AK-Net option(s) {', '.join(unknown)} cannot be set here; settable: {', '.join(sorted(settable))}")
        AKNetConfig(**options).validate()


def build_counted_model(backbone: str, *, split: str, alpha: float, frames: int, num_classes: int,
                options: Mapping[str, Any] | None = None) -> nn.Module:
    """The plain backbone (``split == "none"``) or AK-Net on it, randomly initialised.

    ``options`` are AK-Net switches (:class:`~aknet_cli.models.aknet.AKNetConfig` fields such
    as ``transform_rank`` or ``stride_mode``); ignored for the plain backbone.
    """
    from .._registry import create_backbone

    torch.manual_seed(0)
    if split == "none":
        return create_backbone(backbone, num_classes=num_classes, num_segments=frames)
    from ..models.aknet import build_aknet

    return build_aknet(backbone, split=split, alpha=alpha, num_classes=num_classes,
                       num_segments=frames, **dict(options or {}))


@lru_cache(maxsize=64)
def _count_cached(backbone, split, alpha, frames, size, num_classes, mode, options: tuple) -> FlopReport:
    model = build_counted_model(backbone, split=split, alpha=alpha, frames=frames, num_classes=num_classes,
                        options=dict(options))
    config = {"backbone": backbone, "split": split, "alpha": alpha if split != "none" else None,
              "frames": frames, "size": size, "num_classes": num_classes, "mode": mode,
              "options": dict(options) if split != "none" else {}}
    report = count_model(model, clip_input(model, frames, size),
                         train_forward=(mode == "train" and split != "none"), config=config)
    if split != "none":
        report.notes.append(
            "inference excludes the auxiliary head" if mode == "inference" else
            "train mode: the auxiliary head is counted by running the training forward with every "
            "layer in eval mode"
        )
    return report


def count(backbone: str = "tsm_resnet50", *, split: str = "none", alpha: float = 0.3, frames: int = 8,
          size: int = 224, num_classes: int = 174, mode: str = "inference",
          options: Mapping[str, Any] | None = None) -> FlopReport:
    """Count a plain backbone or AK-Net on it, per clip, in eval mode.

    ``options``: AK-Net switches, e.g. ``{"transform_rank": 64, "stride_mode": "axis"}``.

    Raises:
        ConfigError: a value out of range.
        UnknownBackboneError: ``backbone`` is not registered.
    """
    validate(split=split, alpha=alpha, frames=frames, size=size, mode=mode, num_classes=num_classes,
             options=options)
    from .._registry import get_backbone_factory

    get_backbone_factory(backbone)  # unknown name -> one clear error before any work
    return _count_cached(backbone, split, float(alpha), int(frames), int(size), int(num_classes), mode,
                         tuple(sorted((options or {}).items())))


# ----------------------------------------------------------------------------- Table II
def table_ii(*, alpha: float = 0.3, frames: int = 8, size: int = 224, num_classes: int = 174,
             options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Our counts of the paper's Table II rows beside its published GFLOPs.

    The AK-Net rows count the paper's model, i.e. its full transform net
    (``transform_rank=None``), unless ``options`` say otherwise."""
    rows = []
    options = {"transform_rank": None, **(options or {})}
    for method, (backbone, split, paper_gflops) in PAPER_TABLE_II.items():
        rep = count(backbone, split=split, alpha=alpha, frames=frames, size=size,
                    num_classes=num_classes, options=options)
        rows.append({
            "method": method, "backbone": backbone, "split": split,
            "alpha": alpha if split != "none" else None,
            "gflops": rep.gflops, "paper_gflops": paper_gflops,
            "rel_diff": rep.gflops / paper_gflops - 1.0,
            "params_m": rep.params / 1e6,
            "by_part": {p.name: p.as_dict()["gflops"] for p in rep.parts},
        })
    return rows


# ------------------------------------------------------------------------------ Table I
@dataclass(frozen=True)
class LayerConfig:
    """One conv layer of Table I: channels, kernel sizes, feature size, number of points."""

    cin: int = 256
    cout: int = 256
    ks: int = 3
    kt: int = 3
    kp: int = 3
    t: int = 8
    h: int = 14
    w: int = 14
    n: int | None = None  # default: round(0.3·T·H·W)

    def points(self) -> int:
        return self.n if self.n is not None else max(1, int(math.floor(0.3 * self.t * self.h * self.w + 0.5)))

    def validate(self) -> "LayerConfig":
        for name in ("cin", "cout", "ks", "kt", "kp", "t", "h", "w"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be >= 1, got {getattr(self, name)}")
        for name in ("ks", "kt", "kp"):
            if getattr(self, name) % 2 == 0:
                raise ConfigError(f"--{name} must be odd (same-padding keeps the feature size), got {getattr(self, name)}")
        positions = self.t * self.h * self.w
        if self.n is not None and not 1 <= self.n <= positions:
            raise ConfigError(f"--n must be between 1 and T×H×W = {positions} (the points are chosen among the "
                              f"positions), got {self.n}")
        return self


def table_i_formulas(cfg: LayerConfig) -> dict[str, tuple[int, int]]:
    """Table I's analytic ``(params, FLOPs)`` for each method (bias not counted)."""
    ci, co, ks, kt, kp = cfg.cin, cfg.cout, cfg.ks, cfg.kt, cfg.kp
    thw = cfg.t * cfg.h * cfg.w
    return {
        "3D CNN": (ci * co * ks**2 * kt, ci * co * ks**2 * kt * thw),
        "(2+1)D CNN": (ci * co * (ks**2 + kt), ci * co * (ks**2 + kt) * thw),
        "2D CNN": (ci * co * ks**2, ci * co * ks**2 * thw),
        "Ours (1-D)": (ci * co * kp, ci * co * kp * cfg.points()),
    }


def table_i_modules(cfg: LayerConfig) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """The real layers each Table I row describes, with a matching input (no bias)."""
    ci, co, ks, kt, kp = cfg.cin, cfg.cout, cfg.ks, cfg.kt, cfg.kp
    video = torch.zeros(1, ci, cfg.t, cfg.h, cfg.w)
    return {
        "3D CNN": (nn.Conv3d(ci, co, (kt, ks, ks), padding=(kt // 2, ks // 2, ks // 2), bias=False), video),
        # R(2+1)D-style: spatial (1,k,k) then temporal (k,1,1). Table I's formula multiplies
        # both by C_in·C_out, which is exact when C_in == C_out.
        "(2+1)D CNN": (nn.Sequential(
            nn.Conv3d(ci, co, (1, ks, ks), padding=(0, ks // 2, ks // 2), bias=False),
            nn.Conv3d(co, co, (kt, 1, 1), padding=(kt // 2, 0, 0), bias=False),
        ), video),
        "2D CNN": (nn.Conv2d(ci, co, ks, padding=ks // 2, bias=False), torch.zeros(cfg.t, ci, cfg.h, cfg.w)),
        "Ours (1-D)": (nn.Conv1d(ci, co, kp, padding=kp // 2, bias=False), torch.zeros(1, ci, cfg.points())),
    }


def table_i(cfg: LayerConfig) -> list[dict[str, Any]]:
    """Table I's formulas beside what fvcore counts on the matching real modules."""
    cfg.validate()
    rows = []
    formulas = table_i_formulas(cfg)
    for method, (module, x) in table_i_modules(cfg).items():
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fa = flop_analysis(module.eval(), (x,))
            flops = int(fa.total())
        params = count_parameters(module)
        f_params, f_flops = formulas[method]
        note = ""
        if method == "(2+1)D CNN" and cfg.cin != cfg.cout:
            note = "formula assumes C_in = C_out for the temporal conv (counted: C_out² · k_t)"
        rows.append({
            "method": method, "params_formula": f_params, "params_fvcore": params,
            "flops_formula": f_flops, "flops_fvcore": flops,
            "match": f_params == params and f_flops == flops, "note": note,
        })
    return rows
