"""The paper's recipe as code: parameter groups, optimizer, step-wise learning-rate schedule.

* Learning rate scaled linearly with the global batch: ``lr · batch / base_batch_size``
  (the paper: 0.01 at 64).
* No weight decay on BatchNorm parameters and biases (every tensor of rank ≤ 1), as TSM.
* Fresh classifier heads learn faster (TSM's ×5 weight / ×10 bias): in stage 1 the
  backbone's ``fc`` when the rest starts from pretrained weights; in stage 2 the auxiliary
  head, the one classifier that starts from nothing (``head.fc`` starts as stage 1's).
* Stage 2's fresh position module (the transform net) has its own multiplier,
  ``position_lr_mult``: with AdamW its identity-initialised output can run away (see
  docs/ablation.md, "the res2 transform collapse").
* Linear warm-up over ``warmup_epochs``, then ×``gamma`` at each milestone epoch; the schedule
  advances every step, so a resumed run continues it exactly.
"""

from __future__ import annotations

import bisect

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..models.aknet import AKNet
from .config import RunConfig


def fresh_head_prefixes(cfg: RunConfig) -> tuple[str, ...]:
    if cfg.model.stage == 2:
        return ("aux_head.",)
    return ("fc.",) if cfg.model.pretrained else ()


def param_groups(model: nn.Module, cfg: RunConfig) -> list[dict]:
    """Split parameters by (decay?, lr multiplier); empty groups are dropped."""
    fresh = fresh_head_prefixes(cfg)
    o = cfg.optim
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_bias_or_bn = param.ndim <= 1
        decay = 0.0 if (o.no_decay_bn_bias and is_bias_or_bn) else o.weight_decay
        mult = 1.0
        if name.startswith(fresh):
            mult = o.fc_bias_lr_mult if is_bias_or_bn else o.fc_lr_mult
        elif cfg.model.stage == 2 and name.startswith("position."):
            mult = o.position_lr_mult
        groups.setdefault((decay, mult), []).append(param)
    base = cfg.scaled_lr
    return [{"params": ps, "weight_decay": d, "lr": base * m, "lr_mult": m} for (d, m), ps in groups.items()]


def build_optimizer(model: nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.scaled_lr, momentum=o.momentum)
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.scaled_lr)
    return torch.optim.AdamW(groups, lr=cfg.scaled_lr)


def lr_factor(step: int, steps_per_epoch: int, cfg: RunConfig) -> float:
    """Multiplier of the base lr at global ``step`` (0-based): warm-up, then step decay."""
    o = cfg.optim
    epoch = step / steps_per_epoch
    warmup_steps = o.warmup_epochs * steps_per_epoch
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return warm * o.gamma ** bisect.bisect_right(o.milestones, epoch)


def build_scheduler(optimizer: torch.optim.Optimizer, steps_per_epoch: int, cfg: RunConfig):
    """A ``LambdaLR`` stepped once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps_per_epoch, cfg))


def apply_partial_bn(model: nn.Module) -> int:
    """TSM's partial BN: every BatchNorm but the first one the frames meet keeps its statistics
    and affine frozen.

    The first is found by role, not by registration order: an AK-Net registers its point net
    (the stages after the split) before its 2-D features, so the first BatchNorm of
    ``model.modules()`` would be the point net's, and the stem's would be frozen.
    Call after ``model.train()``. Returns how many BatchNorm layers were frozen.
    """
    input_side = model.features if isinstance(model, AKNet) else model
    first = next((m for m in input_side.modules() if isinstance(m, _BatchNorm)), None)
    frozen = 0
    for m in model.modules():
        if isinstance(m, _BatchNorm) and m is not first:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
            frozen += 1
    return frozen
