"""The FLOP-counting core: fvcore with handles for AK-Net's selection ops, broken down by part.

Below the engine (evaluation reports GFLOPs) and the analysis tables (``aknet flops``), which
both count through :func:`count_model`.

Convention (:data:`CONVENTION`): fvcore's, one fused multiply-add = one FLOP, so "GFLOPs" are
GMACs as in Table II; per clip of ``T`` frames, one view (one crop, one clip), ``size²`` input
(224² unless asked otherwise); counted in **eval mode** (BatchNorm costs 2 FLOPs per element
there, 5 in train mode: ResNet-50 × 8 frames counts 32.88 G in eval mode, 33.16 G in train
mode). Elementwise ops (add, mul, sigmoid, ...) and pooling of the 2-D backbones are not
counted, as fvcore and the published TSM/TDN numbers do; they are listed as unsupported ops.

fvcore silently ignores ``aten::gather`` and ``aten::max`` and only warns on ``topk``/``sort``/
``softmax``, which would make keypoint selection look free. :func:`flop_analysis` registers
:data:`EXTRA_HANDLES` for them (and takes them off fvcore's ignore list) with this cost model,
one comparison or one moved element counted as one FLOP:

* ``topk`` of ``k`` among ``n``: ``n·log2(k)`` (a size-``k`` heap over the ``n`` inputs);
* ``sort``/``argsort`` along a dim of length ``L``: ``numel·log2(L)``;
* ``gather``/``index_select``/``take_along_dim``/``index``: one per gathered output element;
* ``softmax``/``log_softmax``: 3 per element (exp, sum, divide);
* ``max``/``min``/``amax``/``amin``/``max_pool1d``/``adaptive_max_pool1d``: one comparison per
  input element.

Only AK-Net's own modules use these ops, so the plain backbones count exactly as in fvcore.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..exceptions import ConfigError
from . import count_parameters

CONVENTION = (
    "fvcore: 1 fused multiply-add = 1 FLOP (GFLOPs = GMACs, as in the paper's Table II); "
    "per clip of {frames} frames, 1 view, {size}x{size}; eval mode (BatchNorm at 2 FLOPs/element); "
    "elementwise ops not counted; selection ops counted with aknet's cost model"
)
# --------------------------------------------------------------------------- op handles
def _shape(value) -> list[int] | None:
    t = value.type()
    if not isinstance(t, torch._C.TensorType):
        return None
    sizes = t.sizes()
    return None if sizes is None else [int(s) for s in sizes]


def _numel(value) -> int:
    shape = _shape(value)
    return 0 if shape is None else math.prod(shape)


def _const_int(value) -> int | None:
    try:
        v = value.toIValue()
    except Exception:  # not a constant
        return None
    return v if type(v) is int else None


def _dim_arg(inputs, rank: int, default: int = -1) -> int:
    """First plain ``int`` constant among an op's arguments after ``self`` (its ``dim``)."""
    for v in inputs[1:]:
        d = _const_int(v)
        if d is not None:
            return d % rank if rank else 0
    return default % rank if rank else 0


def topk_flops(inputs, outputs) -> int:
    """``n·log2(k)`` comparisons: a size-``k`` heap over ``n`` elements."""
    shape = _shape(inputs[0]) or []
    out = _shape(outputs[0]) or []
    dim = _const_int(inputs[2]) if len(inputs) > 2 else -1
    dim = (dim if dim is not None else -1) % max(len(out), 1)
    k = out[dim] if out else 1
    return int(round(math.prod(shape) * math.log2(max(k, 2))))


def sort_flops(inputs, outputs) -> int:
    """``numel·log2(L)`` comparisons for a sort along a dim of length ``L``."""
    shape = _shape(inputs[0]) or []
    if not shape:
        return 0
    length = shape[_dim_arg(inputs, len(shape))]
    return int(round(math.prod(shape) * math.log2(max(length, 2))))


def gathered_elements(inputs, outputs) -> int:
    """One per gathered output element (a read and a write counted as one operation)."""
    return _numel(outputs[0])


def baddbmm_flops(inputs, outputs) -> int:
    """``baddbmm(C, A, B)``: the multiply-adds of its product ``A B``, as fvcore counts ``bmm``
    (the added ``C`` is the bias a convolution's count leaves out too)."""
    a, b = _shape(inputs[1]) or [], _shape(inputs[2]) or []
    if len(a) != 3 or len(b) != 3:
        return 0
    return a[0] * a[1] * a[2] * b[2]


def softmax_flops(inputs, outputs) -> int:
    """Three per element: exp, the running sum, the divide."""
    return 3 * _numel(inputs[0])


def reduction_comparisons(inputs, outputs) -> int:
    """One comparison per input element."""
    return _numel(inputs[0])


Handle = Callable[[list, list], int]
EXTRA_HANDLES: dict[str, Handle] = {
    "aten::baddbmm": baddbmm_flops,
    "aten::topk": topk_flops,
    "aten::sort": sort_flops,
    "aten::argsort": sort_flops,
    "aten::gather": gathered_elements,
    "aten::index_select": gathered_elements,
    "aten::take_along_dim": gathered_elements,
    "aten::index": gathered_elements,
    "aten::softmax": softmax_flops,
    "aten::log_softmax": softmax_flops,
    "aten::max": reduction_comparisons,
    "aten::min": reduction_comparisons,
    "aten::amax": reduction_comparisons,
    "aten::amin": reduction_comparisons,
    "aten::max_pool1d": reduction_comparisons,
    "aten::adaptive_max_pool1d": reduction_comparisons,
}

COST_MODEL: dict[str, str] = {
    "topk": "n*log2(k) comparisons",
    "sort/argsort": "numel*log2(L) comparisons, L = length of the sorted dim",
    "gather/index_select/take_along_dim/index": "1 per gathered element",
    "softmax/log_softmax": "3 per element",
    "baddbmm": "the multiply-adds of its batched product, as bmm",
    "max/min/amax/amin/max_pool1d": "1 comparison per input element",
}


def flop_analysis(model: nn.Module, inputs: tuple):
    """A quiet ``FlopCountAnalysis`` with :data:`EXTRA_HANDLES` registered and un-ignored."""
    from fvcore.nn import FlopCountAnalysis

    fa = FlopCountAnalysis(model, inputs)
    fa.set_op_handle(**EXTRA_HANDLES)
    # fvcore checks its ignore list before its handles, so a handle alone never fires for
    # gather/max/index: take them off the list.
    ignored = getattr(fa, "_ignored_ops", None)
    if isinstance(ignored, set):
        ignored.difference_update(EXTRA_HANDLES)
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    fa.tracer_warnings("none")
    return fa


# ------------------------------------------------------------------------------ reports
@dataclass
class Part:
    name: str
    flops: int
    params: int

    def as_dict(self) -> dict[str, float]:
        return {"gflops": self.flops / 1e9, "params_m": self.params / 1e6}


@dataclass
class FlopReport:
    """One counted model: total, breakdown by part, what fvcore could not count."""

    flops: int
    params: int
    params_all: int
    parts: list[Part]
    unsupported_ops: dict[str, int]
    uncalled_modules: list[str]
    config: dict[str, Any]
    convention: str
    notes: list[str] = field(default_factory=list)

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    def part(self, name: str) -> Part | None:
        return next((p for p in self.parts if p.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "gflops": self.gflops,
            "params_m": self.params / 1e6,
            "params_all_m": self.params_all / 1e6,
            "by_part": {p.name: p.as_dict() for p in self.parts},
            "convention": self.convention,
            "selection_cost_model": COST_MODEL,
            "unsupported_ops": self.unsupported_ops,
            "uncalled_modules": self.uncalled_modules,
            "config": self.config,
            "notes": self.notes,
        }


def _find_backbone(model: nn.Module):
    from .backbone import VideoBackbone

    for m in model.modules():
        if isinstance(m, VideoBackbone):
            return m
    raise ConfigError(f"{type(model).__name__} contains no VideoBackbone")


def clip_input(model: nn.Module, frames: int, size: int, batch: int = 1) -> torch.Tensor:
    """A random clip batch in the model's backbone layout (``frames_per_segment`` aware)."""
    fps = _find_backbone(model).frames_per_segment
    g = torch.Generator().manual_seed(0)
    shape = (batch, frames, 3, size, size) if fps == 1 else (batch, frames, fps, 3, size, size)
    return torch.randn(shape, generator=g)


class _TrainForward(nn.Module):
    """Runs AK-Net's training forward (aux head included) with every layer in eval mode, and
    returns plain tensors so the JIT can trace it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        out = self.model(x)
        return out.logits, out.aux_logits


def _part_paths(model: nn.Module, prefix: str = "") -> list[tuple[str, str]]:
    """``(label, module path)`` of the parts to report, in pipeline order."""
    from .backbone import STAGE_NAMES

    names = dict(model.named_modules())
    out: list[tuple[str, str]] = []

    def add(label: str, path: str) -> None:
        mod = names.get(path)
        if mod is not None and not isinstance(mod, nn.Identity):
            out.append((label, path))

    bb = "features.backbone" if "features.backbone" in names else ""
    stages = f"{bb}.stages" if bb else "stages"
    for st in STAGE_NAMES:
        add(st, f"{stages}.{st}")
    add("short-term TDM", f"{bb}.short_term" if bb else "short_term")
    if not bb:
        add("head", "fc")
        return out
    add("heatmap", "heatmap")
    add("selection", "selector")
    pos = names.get("position")
    if pos is not None:
        label = "transform net" if type(pos).__name__ == "TransformNet" else "position embedding"
        add(label, "position")
    for key in names:
        if key.startswith("point_net.") and key.count(".") == 1:
            add(f"{key.split('.')[1]} (1-D)", key)
    add("head", "head")
    add("aux head", "aux_head")
    return out


def count_model(model: nn.Module, x: torch.Tensor, *, train_forward: bool = False,
                bn_mode: str = "eval", config: dict | None = None) -> FlopReport:
    """Count one model on one input with fvcore and break it down by part.

    Args:
        model: a :class:`VideoBackbone` or an AK-Net.
        x: one clip batch (batch 1 for per-clip numbers).
        train_forward: AK-Net only: count the training forward (auxiliary head included),
            still with every layer in eval mode.
        bn_mode: ``"eval"`` (the convention) or ``"train"`` (BatchNorm counted with batch
            statistics, as some papers do; for the TSM cross-check only).
        config: echoed into the report.
    """
    frames, size = int(x.shape[1]), int(x.shape[-1])
    total, by_module, unsupported, uncalled_all, prefix = _analyse(model, x, train_forward=train_forward,
                                                                   bn_mode=bn_mode)
    names = dict(model.named_modules())
    # Report the outermost uncalled modules that do something (not Identity placeholders).
    uncalled = sorted(
        m for m in uncalled_all
        if not isinstance(names.get(m), nn.Identity)
        and not any(m.startswith(p + ".") for p in uncalled_all)
    )
    notes = []
    if bn_mode == "train":
        notes.append("BatchNorm counted in train mode (5 FLOPs/element), not the convention")
    return FlopReport(
        flops=total,
        params=_used_parameters(model, uncalled_all),
        params_all=count_parameters(model),
        parts=_parts(model, total, by_module, prefix),
        unsupported_ops=unsupported,
        uncalled_modules=uncalled,
        config=dict(config or {}),
        convention=CONVENTION.format(frames=frames, size=size),
        notes=notes,
    )


def _analyse(model: nn.Module, x: torch.Tensor, *, train_forward: bool, bn_mode: str):
    """fvcore's count of one forward: ``(total, by module, unsupported ops, uncalled modules,
    module-name prefix)``; the model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.train(bn_mode == "train")
    target: nn.Module = model
    prefix = ""
    if train_forward:
        model.training = True  # root flag only: AK-Net runs its aux head, layers stay in eval
        target, prefix = _TrainForward(model), "model."
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fa = flop_analysis(target, (x,))
            return (int(fa.total()), fa.by_module(), dict(fa.unsupported_ops()),
                    {m.removeprefix(prefix) for m in fa.uncalled_modules()}, prefix)
    finally:
        model.train(was_training)


def _parts(model: nn.Module, total: int, by_module: dict[str, int], prefix: str) -> list[Part]:
    """FLOPs and parameters of each reported part, in pipeline order; what falls between the
    parts (inside ``features`` or in the model's own forward) as rows of its own."""
    names = dict(model.named_modules())
    paths = _part_paths(model)
    parts = [Part(label, int(by_module.get(prefix + path, 0)), count_parameters(names[path])) for label, path in paths]
    if "features" in names:
        inside = sum(p.flops for p, (_, path) in zip(parts, paths) if path.startswith("features."))
        rest = int(by_module.get(prefix + "features", 0)) - inside
        if rest:
            parts.append(Part("features (other)", rest, 0))
    other = total - sum(p.flops for p in parts)
    if other:
        parts.append(Part("other (model forward)", other, 0))
    return parts


def _used_parameters(model: nn.Module, uncalled: set[str]) -> int:
    """Parameters the counted forward uses: modules it never called are dropped (the aux head
    at inference; the backbone's own classifier inside AK-Net)."""
    names = dict(model.named_modules())
    unused: set[int] = set()
    for m in uncalled:
        mod = names.get(m)
        if mod is not None:
            unused.update(id(p) for p in mod.parameters())
    return sum(p.numel() for p in model.parameters() if id(p) not in unused)
