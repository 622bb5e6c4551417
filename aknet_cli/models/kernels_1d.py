"""The 1-D conversion ``M`` (eq. 11): compact the 2-D layers of ``P`` into 1-D layers.

Every ``Conv2d`` with a ``kh×kw`` kernel becomes a ``Conv1d`` with kernel ``kh``, whose weight
is the 2-D weight summed over the other spatial axis (``ŵ_i = Σ_j w_ij``); padding, dilation
and groups of the kept axis are carried over, and the stride follows :data:`STRIDE_MODES`. ``BatchNorm2d`` becomes
``BatchNorm1d`` with its affine parameters and running statistics copied. Pools follow the
same rule. Modules whose ``forward`` works on any rank (``Sequential``, torchvision's
``BasicBlock`` / ``Bottleneck``, activations) are converted child by child.

Why summing is the right initialisation: if the input is constant along the summed axis,
the 2-D convolution and its 1-D counterpart give the same output (away from the borders),
so a pretrained ``P`` starts from the same function on such inputs.

Temporal modules have no frames to work on once keypoints are selected. A module that
knows how to convert itself has a ``to_1d(convert) -> (module, description)`` method
(:class:`~aknet_cli.layers.TemporalShift` drops its shift this way); a backbone may also
override :meth:`VideoBackbone.convert_1d` for its own module types. Everything else with
parameters or an unknown ``forward`` is refused with an error naming it, never guessed.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Callable

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from ..exceptions import ConfigError

#: Parameter-free modules whose forward is elementwise, hence rank-agnostic.
ELEMENTWISE = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
    nn.Hardswish, nn.Hardsigmoid, nn.Dropout,
)
#: Containers whose forward only chains children and adds tensors, whatever their rank.
RANK_AGNOSTIC = (
    nn.Sequential, nn.ModuleList, nn.ModuleDict,
    torchvision.models.resnet.BasicBlock, torchvision.models.resnet.Bottleneck,
)


#: How a 2-D stride ``(sh, sw)`` becomes a 1-D stride.
#: ``"area"``: ``sh·sw``, so a strided layer keeps the same *fraction* of the points as the
#: 2-D layer keeps of the positions (a stride-2 block quarters both). This reproduces the
#: paper's Table II (28 G for Ours_TSM) and Fig. 5 (shallower split = cheaper). The reduction
#: is split so that every point is still read (see :class:`AreaConv1d`): the layer runs at the
#: kept axis's stride and the other axis's stride becomes an average over consecutive outputs
#: (a pointwise layer averages first instead, which is the same function at lower cost). A
#: plain 3-tap conv at stride 4 would never read one point in four.
#: ``"axis"``: the kept axis's stride ``sh``, the literal reading of "replace the kernels";
#: a stride-2 block then only halves the points, and splitting at res2 costs more than at res4.
STRIDE_MODES = ("area", "axis")


@dataclass(frozen=True)
class ConversionRecord:
    """What happened to one module of ``P``."""

    path: str
    source: str
    target: str
    action: str  # "converted", "dropped", "plugin"
    note: str = ""


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def conv2d_to_1d(
    conv: nn.Conv2d, sum_axis: int = -1, stride: int | None = None, *, pool: int = 1, pool_first: bool = False,
) -> nn.Conv1d:
    """Compact a ``Conv2d`` into a ``Conv1d`` by summing its kernel over one spatial axis.

    Args:
        conv: the 2-D convolution.
        sum_axis: ``-1`` sums over the kernel width (the 1-D conv keeps the height's kernel
            size, stride, padding and dilation); ``-2`` sums over the height.
        stride: overrides the kept axis's stride (see :data:`STRIDE_MODES`).
        pool, pool_first: with ``pool > 1`` an :class:`AreaConv1d` that also averages ``pool``
            consecutive outputs (inputs, with ``pool_first``).

    Returns:
        A ``Conv1d`` on ``(B, C, N)`` with weight ``conv.weight.sum(sum_axis)``.
    """
    if sum_axis not in (-1, -2):
        raise ConfigError(f"sum_axis must be -1 (width) or -2 (height), got {sum_axis}")
    keep = 0 if sum_axis == -1 else 1
    padding = conv.padding if isinstance(conv.padding, str) else _pair(conv.padding)[keep]
    extra = {"pool": pool, "pool_first": pool_first} if pool > 1 else {}
    out = (AreaConv1d if pool > 1 else PointConv1d)(
        conv.in_channels,
        conv.out_channels,
        kernel_size=_pair(conv.kernel_size)[keep],
        stride=_pair(conv.stride)[keep] if stride is None else stride,
        padding=padding,
        dilation=_pair(conv.dilation)[keep],
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        **extra,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        out.weight.copy_(conv.weight.sum(dim=sum_axis))
        if conv.bias is not None:
            out.bias.copy_(conv.bias)
    return out


def pointwise_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1×1, stride-1 ``Conv1d`` as a batched matrix product: ``(B, C_in, N) -> (B, C_out, N)``.

    The same function as ``F.conv1d(x, weight, bias)``. Why: oneDNN runs a 1×1 convolution over
    a long point sequence well below its matrix-product rate on CPU (2-core machine, 2 threads,
    each shape alone, batch 8: 256→128 channels on 7,526 points 37 GMAC/s as a conv, 116 as a
    product; ≤ 471 points: alike). In AK-Net-TSM-R50, fused, timed interleaved: at batch 8 the
    layers after the split went from 1,006 to 872 ms at res2 (the transform net 367 → 275 ms)
    and 470 → 446 ms at res3; at batch 1 no change beyond noise. ``bmm`` with the weight
    expanded over the batch (no copy), not ``matmul``: fvcore counts ``bmm`` exactly, batch
    included, and as many multiply-adds as the conv it replaces. A bias (every conv has one once
    BatchNorms are folded) goes into the product's accumulator (``baddbmm``, counted as ``bmm``
    by :mod:`.flop_count`) instead of a second pass over the output.
    """
    w = weight[:, :, 0].expand(x.shape[0], -1, -1)
    if bias is None:
        return torch.bmm(w, x)
    return torch.baddbmm(bias.view(1, -1, 1), w, x)


class PointConv1d(nn.Conv1d):
    """A ``Conv1d`` over a point sequence whose 1×1, stride-1 kernels run as a batched matrix
    product (:func:`pointwise_conv1d`); every other kernel is a plain ``Conv1d``. Same
    parameters, state-dict keys and function as ``nn.Conv1d``."""

    def _pointwise(self) -> bool:
        return (self.kernel_size == (1,) and self.stride == (1,) and self.dilation == (1,) and self.groups == 1
                and self.padding in ((0,), "valid"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pointwise():
            return pointwise_conv1d(x, self.weight, self.bias)
        return super().forward(x)


class AreaConv1d(PointConv1d):
    """A ``Conv1d`` whose area-rule stride ``s_kept·s_other`` reads every input point.

    The convolution runs at the kept axis's stride (where the 2-D kernel already covers every
    position it strides over), and the other axis's stride, which has no axis left in the
    point sequence, becomes an average over ``pool`` consecutive outputs, as ResNet-D averages
    before its strided shortcut. A kernel shorter than its stride (a strided 1×1 shortcut)
    averages its input first instead: for a pointwise conv that is the same function
    (averaging commutes with it) at ``1/pool`` of the cost.

    Output length ``ceil(N / (stride·pool))`` for a ``k = 2p + 1`` kernel with padding ``p``,
    the same as one conv at stride ``stride·pool``, so residual branches still add. Its
    parameters and state-dict keys are those of a plain ``Conv1d``.

    Args:
        pool: outputs (or inputs, with ``pool_first``) averaged into one; ``1`` is a plain conv.
        pool_first: average the input before convolving (pointwise kernels).
        *args, **kwargs: as :class:`torch.nn.Conv1d`.
    """

    def __init__(self, *args, pool: int = 1, pool_first: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pool = int(pool)
        self.pool_first = bool(pool_first)
        self.folded_weight: torch.Tensor | None = None

    def extra_repr(self) -> str:
        where = "before" if self.pool_first else "after"
        folded = ", folded" if self.folded_weight is not None else ""
        return super().extra_repr() + (f", mean of {self.pool} {where}{folded}" if self.pool > 1 else "")

    def _mean(self, x: torch.Tensor) -> torch.Tensor:
        # ceil_mode: a partial last window averages the points it has, so no point is dropped.
        return F.avg_pool1d(x, self.pool, self.pool, ceil_mode=True) if self.pool > 1 else x

    def foldable(self) -> bool:
        """Whether the average after the convolution can be folded into it (:meth:`fold_average`)."""
        return (self.pool > 1 and not self.pool_first and self.dilation == (1,) and self.padding_mode == "zeros"
                and not isinstance(self.padding, str))

    @torch.no_grad()
    def fold_average(self) -> bool:
        """Fold the average over ``pool`` consecutive outputs into the convolution, for inference.

        The mean of ``pool`` consecutive outputs of a ``k``-tap convolution at stride ``s`` is
        one convolution with ``k + (pool − 1)·s`` taps at stride ``s·pool`` whose weight is the
        mean of the kernel shifted by ``0, s, …, (pool − 1)·s``: one pass over memory instead of
        two, and ``(k + (pool − 1)·s) / (pool·k)`` of the multiply-adds (5/6 for a 3-tap conv at
        stride 2 averaged by 2). The partial last window (an odd number of outputs) is computed
        as before, so the function is unchanged up to float rounding. Returns False where the
        layer has nothing to fold. The folded weight is a copy: do not train the folded layer.
        """
        if not self.foldable():
            return False
        (k,), (s,) = self.kernel_size, self.stride
        weight = self.weight.new_zeros(*self.weight.shape[:2], k + (self.pool - 1) * s)
        for i in range(self.pool):
            weight[:, :, i * s:i * s + k] += self.weight / self.pool
        self.folded_weight = weight
        return True

    def _folded(self, x: torch.Tensor) -> torch.Tensor:
        (k,), (s,), (p,) = self.kernel_size, self.stride, self.padding
        n = int(x.shape[-1])
        length = (n + 2 * p - k) // s + 1  # outputs of the unfolded convolution
        full, rest = divmod(length, self.pool)
        out = F.conv1d(x, self.folded_weight, self.bias, s * self.pool, p, 1, self.groups)[..., :full] if full else None
        if rest == 0:
            return out
        # The partial last window: its `rest` outputs of the plain convolution, averaged.
        start = full * self.pool * s - p
        stop = (length - 1) * s - p + k
        tail = F.pad(x[..., max(start, 0):min(stop, n)], (max(-start, 0), max(stop - n, 0)))
        tail = F.conv1d(tail, self.weight, self.bias, s, 0, 1, self.groups).mean(dim=-1, keepdim=True)
        return tail if out is None else torch.cat([out, tail], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, N) -> (B, C_out, N')``, ``N' = ceil(N / (stride·pool))``."""
        if self.pool_first:
            return super().forward(self._mean(x))
        if self.folded_weight is not None:
            return self._folded(x)
        return self._mean(super().forward(x))


def area_split(kernel: int, kept_stride: int, other_stride: int) -> tuple[int, int, bool]:
    """How a 2-D stride becomes an area-rule 1-D reduction that reads every point.

    Args:
        kernel: the kept axis's kernel size.
        kept_stride, other_stride: the 2-D stride along the kept and the summed axis.

    Returns:
        ``(stride, pool, pool_first)``: the layer's own stride, the averaging factor, and
        whether the average comes first. ``stride · pool == kept_stride · other_stride``.
    """
    area = kept_stride * other_stride
    if kernel == 1:
        return 1, area, True  # pointwise: averaging first is the same function, cheaper
    if kernel >= kept_stride:
        return kept_stride, other_stride, False  # the kernel covers its own stride
    return 1, area, False  # rare (kernel shorter than its stride): read everything, then average


def batchnorm2d_to_1d(bn: nn.BatchNorm2d) -> nn.BatchNorm1d:
    """``BatchNorm2d`` → ``BatchNorm1d`` with affine parameters and running statistics copied."""
    out = nn.BatchNorm1d(
        bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
        track_running_stats=bn.track_running_stats,
    )
    out.load_state_dict(bn.state_dict())
    ref = next(itertools.chain(bn.parameters(), bn.buffers()), None)
    return out if ref is None else out.to(ref.device)


def pool2d_to_1d(pool: nn.Module, keep: int, stride: int | None = None, avg_after: int = 1) -> nn.Module:
    """``MaxPool2d``/``AvgPool2d``/adaptive pools → their 1-D counterparts along axis ``keep``.

    ``avg_after > 1`` appends an average over that many consecutive outputs (the area rule's
    share of the summed axis's stride, see :class:`AreaConv1d`).
    """
    if isinstance(pool, nn.MaxPool2d):
        out: nn.Module = nn.MaxPool1d(_pair(pool.kernel_size)[keep], _pair(pool.stride)[keep] if stride is None else stride,
                                      _pair(pool.padding)[keep], _pair(pool.dilation)[keep],
                                      ceil_mode=pool.ceil_mode)
    elif isinstance(pool, nn.AvgPool2d):
        out = nn.AvgPool1d(_pair(pool.kernel_size)[keep], _pair(pool.stride)[keep] if stride is None else stride,
                           _pair(pool.padding)[keep], ceil_mode=pool.ceil_mode,
                           count_include_pad=pool.count_include_pad)
    else:
        size = _pair(pool.output_size)[keep]
        cls = nn.AdaptiveAvgPool1d if isinstance(pool, nn.AdaptiveAvgPool2d) else nn.AdaptiveMaxPool1d
        return cls(size)
    if avg_after > 1:
        out = nn.Sequential(out, nn.AvgPool1d(avg_after, avg_after, ceil_mode=True))
    return out


class Converter:
    """Apply ``M`` to a module tree, recording every decision.

    Args:
        hook: a backbone's :meth:`convert_1d`; called first for every module, ``None`` from
            it means "use the generic rules".
        sum_axis: which kernel axis is summed (see :func:`conv2d_to_1d`).
        stride_mode: ``"area"`` (default) or ``"axis"``, see :data:`STRIDE_MODES`.
    """

    def __init__(
        self,
        hook: Callable[[nn.Module], nn.Module | None] | None = None,
        sum_axis: int = -1,
        stride_mode: str = "area",
    ) -> None:
        if stride_mode not in STRIDE_MODES:
            raise ConfigError(f"stride_mode must be one of {', '.join(STRIDE_MODES)}, got {stride_mode!r}")
        self.hook = hook
        self.sum_axis = sum_axis
        self.stride_mode = stride_mode
        self.records: list[ConversionRecord] = []

    def _area(self, module: nn.Module) -> tuple[int | None, int, bool]:
        """``(stride, pool, pool_first)`` of ``module``'s 1-D counterpart (see :func:`area_split`);
        ``stride`` is ``None`` under ``"axis"``: keep the kept axis's own stride."""
        if self.stride_mode == "axis":
            return None, 1, False
        keep = 0 if self.sum_axis == -1 else 1
        strides, kernel = _pair(module.stride), _pair(module.kernel_size)[keep]
        return area_split(kernel, strides[keep], strides[1 - keep])

    def __call__(self, module: nn.Module, path: str = "") -> nn.Module:
        """Return a converted copy of ``module``; the original is left untouched."""
        return self._convert(copy.deepcopy(module), path)

    def _record(self, path: str, src: nn.Module, dst: nn.Module, action: str, note: str = "") -> None:
        self.records.append(ConversionRecord(path, type(src).__name__, type(dst).__name__, action, note))

    def _convert(self, module: nn.Module, path: str) -> nn.Module:
        keep = 0 if self.sum_axis == -1 else 1
        if self.hook is not None:
            replaced = self.hook(module)
            if replaced is not None:
                self._record(path, module, replaced, "plugin", "backbone's convert_1d")
                return replaced
        if hasattr(module, "to_1d"):
            replaced, note = module.to_1d(lambda child: self._convert(child, f"{path}.net"))
            self._record(path, module, replaced, "dropped", note)
            return replaced
        if isinstance(module, nn.Conv2d):
            stride, pool, first = self._area(module)
            out = conv2d_to_1d(module, self.sum_axis, stride=stride, pool=pool, pool_first=first)
            mean = f" + mean of {pool} {'before' if first else 'after'}" if pool > 1 else ""
            self._record(path, module, out, "converted",
                         f"kernel {tuple(module.kernel_size)} → ({out.kernel_size[0]},), stride {out.stride[0]}{mean}")
            return out
        if isinstance(module, nn.BatchNorm2d):
            out = batchnorm2d_to_1d(module)
            self._record(path, module, out, "converted", "statistics copied")
            return out
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            stride, pool, first = self._area(module)
            if first:  # a 1-wide pool is a subsampler: average instead, which reads every point
                out = nn.AvgPool1d(pool, pool, ceil_mode=True)
            else:
                out = pool2d_to_1d(module, keep, stride=stride, avg_after=pool)
            self._record(path, module, out, "converted")
            return out
        if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            out = pool2d_to_1d(module, keep)
            self._record(path, module, out, "converted")
            return out
        if isinstance(module, ELEMENTWISE):
            return module
        if isinstance(module, RANK_AGNOSTIC) or getattr(module, "aknet_rank_agnostic", False):
            for name, child in list(module.named_children()):
                setattr(module, name, self._convert(child, f"{path}.{name}" if path else name))
            return module
        raise ConfigError(
            f"no 1-D conversion for module {path or '<root>'} ({type(module).__name__}): give it a "
            f"to_1d(convert) method, set aknet_rank_agnostic = True if its forward works on (B, C, N), "
            f"or override the backbone's convert_1d()"
        )


def summarize(records: list[ConversionRecord]) -> dict[str, int]:
    """Counts per action and source type, e.g. ``{"converted Conv2d": 53, ...}``."""
    counts: dict[str, int] = {}
    for r in records:
        key = f"{r.action} {r.source}"
        counts[key] = counts.get(key, 0) + 1
    return counts
