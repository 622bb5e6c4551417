"""Inference-time BatchNorm folding: ``BN(conv(x)) = conv'(x)`` with the statistics baked in.

In eval mode a BatchNorm is an affine map per channel, ``y = γ (x − μ) / √(σ² + ε) + β``, so
when it directly follows a convolution it can be folded into the conv's weight and bias and
removed: one pass over memory per BN layer less, and nothing the exporters have to carry.
That holds for the 2-D layers of ``F`` and for the 1-D layers of ``Q`` and of the transform
net alike.

Only pairs whose data flow is known are folded, never guessed from the order of children:

* adjacent ``(conv, BN)`` children of an ``nn.Sequential``;
* ``convK`` → ``bnK`` in torchvision's ``BasicBlock`` / ``Bottleneck`` (2-D, or 1-D after
  the conversion ``M``);
* a "conv" may be a wrapper whose output *is* its inner layer's output (it declares
  ``aknet_output_layer = "net"``: TSM's :class:`~aknet_cli.layers.TemporalShift`, TDN's
  long-term TDM), or a ``Sequential`` ending in a conv, optionally followed by unpadded
  average pools (per-channel linear maps that keep a bias a bias).

A BatchNorm with no running statistics cannot be folded and is left in place;
:func:`remaining_batchnorms` lists what is left so callers (and tests) can check.
"""

from __future__ import annotations

import copy

import torch
import torchvision
from torch import nn

from .kernels_1d import AreaConv1d

_CONVS = (nn.Conv1d, nn.Conv2d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d)
_BLOCKS = (torchvision.models.resnet.BasicBlock, torchvision.models.resnet.Bottleneck)


def _bias_preserving_pool(module: nn.Module) -> bool:
    """An average pool without padding maps a per-channel constant to itself."""
    if not isinstance(module, (nn.AvgPool1d, nn.AvgPool2d)):
        return False
    padding = module.padding if isinstance(module.padding, tuple) else (module.padding,)
    return all(p == 0 for p in padding)


def output_conv(module: nn.Module) -> nn.Module | None:
    """The convolution whose output is ``module``'s output up to bias-preserving pools, or None."""
    if isinstance(module, _CONVS):
        return module
    inner = getattr(module, "aknet_output_layer", None)
    if isinstance(inner, str):
        return output_conv(getattr(module, inner))
    if isinstance(module, nn.Sequential) and len(module) > 0:
        children = list(module)
        while children and (_bias_preserving_pool(children[-1]) or isinstance(children[-1], nn.Identity)):
            children.pop()
        return output_conv(children[-1]) if children else None
    return None


@torch.no_grad()
def fold_batchnorm(conv: nn.Conv1d | nn.Conv2d, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> bool:
    """Fold eval-mode ``bn`` into ``conv`` in place; return False if it cannot be folded.

    ``W' = W · s``, ``b' = (b − μ) · s + β`` with ``s = γ / √(σ² + ε)`` per output channel.
    """
    if bn.running_mean is None or bn.running_var is None or bn.num_features != conv.out_channels:
        return False
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    shift = -bn.running_mean.double() * scale
    if bn.affine:
        scale = scale * bn.weight.double()
        shift = shift * bn.weight.double() + bn.bias.double()
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    view = (-1,) + (1,) * (conv.weight.dim() - 1)
    conv.weight.copy_((conv.weight.double() * scale.view(view)).to(conv.weight.dtype))
    new_bias = (bias * scale + shift).to(conv.weight.dtype)
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias, requires_grad=conv.weight.requires_grad)
    else:
        conv.bias.copy_(new_bias)
    return True


def _fold_pairs(module: nn.Module) -> None:
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for prev, name in zip(names, names[1:]):
            bn, conv = module._modules[name], output_conv(module._modules[prev])
            if isinstance(bn, _BNS) and conv is not None and fold_batchnorm(conv, bn):
                module._modules[name] = nn.Identity()
    elif isinstance(module, _BLOCKS):
        for k in (1, 2, 3):
            conv, bn = getattr(module, f"conv{k}", None), getattr(module, f"bn{k}", None)
            conv = output_conv(conv) if conv is not None else None
            if isinstance(bn, _BNS) and conv is not None and fold_batchnorm(conv, bn):
                setattr(module, f"bn{k}", nn.Identity())
    for child in module.children():
        _fold_pairs(child)


def fuse_for_inference(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Fold every foldable BatchNorm of ``model`` into the convolution before it, for eval, and
    the area rule's averages into the strided 1-D convolutions before them
    (:meth:`~aknet_cli.models.kernels_1d.AreaConv1d.fold_average`).

    Works on plain backbones and on AK-Net (``F`` in 2-D; ``Q``, the transform net's point
    MLP and the auxiliary head in 1-D/2-D). The result is in eval mode and computes the same
    function as ``model.eval()`` up to float rounding; it must not be trained (the batch
    statistics are gone).

    Args:
        model: any module.
        inplace: fold into ``model`` itself instead of a deep copy (saves the copy of a large
            model, e.g. the paper's ~1 GB transform net).

    Returns:
        The fused model, in eval mode.
    """
    target = model if inplace else copy.deepcopy(model)
    target.eval()
    _fold_pairs(target)
    for module in target.modules():  # after the BatchNorms: the average folds the final weights
        if isinstance(module, AreaConv1d):
            module.fold_average()
    return target


def remaining_batchnorms(model: nn.Module) -> list[str]:
    """Names of the BatchNorm layers still in ``model`` (empty after a complete fusion)."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
