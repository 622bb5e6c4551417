"""The step loop's own work per step: sums kept on the device without a host sync, and the lr
schedule advancing only on the optimizer steps a float16 GradScaler does not skip."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from aknet_cli.engine import loop
from aknet_cli.engine.config import load_config
from aknet_cli.engine.distributed import DistContext
from aknet_cli.engine.trainer import train
from host_sync_spy import HostSyncSpy
from train_fixtures import make_synth, write_config


def test_the_meters_make_no_tensor_from_a_python_value_and_read_nothing_back_per_step(tmp_path, monkeypatch):
    """On CUDA each such tensor is a copy from pageable memory and each read a wait for the GPU."""
    spy, real_add = HostSyncSpy(), loop.Meters.add
    calls = []

    def spied(self, *args, **kwargs):
        calls.append(1)
        with spy:
            return real_add(self, *args, **kwargs)

    monkeypatch.setattr(loop.Meters, "add", spied)
    config = write_config(tmp_path / "run.toml", make_synth(tmp_path, classes=2, train=4, val=1, test=1))
    train(load_config(config, ["optim.epochs=1", "train.log_every=100"]), work_dir=tmp_path / "w", progress=False)
    assert len(calls) == 2 and spy.calls == []


def test_the_first_non_finite_step_is_counted_on_the_device():
    meters = loop.Meters(torch.device("cpu"), first_step=11)  # a resumed epoch's 11th global step comes first
    target = torch.tensor([0, 1])
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    for loss in (1.0, float("nan"), float("inf")):
        meters.add({"loss": torch.tensor(loss), "cls": torch.tensor(loss), "logits": logits}, target)
    assert int(meters.bad_step) == 12
    assert meters.as_dict()["seen"] == 6 and meters.as_dict()["correct"] == 6


def _run_with_a_float16_scaler():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (step + 1) / 10)  # a warm-up
    cfg = SimpleNamespace(optim=SimpleNamespace(clip_grad_norm=0.0), train=SimpleNamespace(channels_last=False))
    return SimpleNamespace(model=model, ddp_model=model, optimizer=optimizer, scheduler=scheduler, cfg=cfg,
                           scaler=torch.amp.GradScaler("cpu", init_scale=2.0 ** 8), amp_dtype=None,
                           ctx=DistContext(), channels_last=False)


def test_the_lr_schedule_does_not_advance_when_the_grad_scaler_skips_the_step():
    run = _run_with_a_float16_scaler()
    clips, target = torch.randn(2, 4), torch.tensor([0, 2])
    overflow = run.model.weight.register_hook(lambda grad: grad * float("inf"))  # an fp16 overflow
    before = run.model.weight.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "lr_scheduler.step() before optimizer.step()" among others
        loop._step(run, clips, target)
        assert torch.equal(run.model.weight, before)  # the scaler skipped the update ...
        assert run.scheduler.last_epoch == 0 and run.scaler.get_scale() == 2.0 ** 7
        assert run.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)  # ... and the warm-up waits for it
        overflow.remove()
        loop._step(run, clips, target)
    assert not torch.equal(run.model.weight, before)
    assert run.scheduler.last_epoch == 1 and run.optimizer.param_groups[0]["lr"] == pytest.approx(0.02)


def _batchnorms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("aknet", [False, True], ids=["backbone", "aknet"])
def test_partial_bn_keeps_the_stems_batchnorm_trainable_and_freezes_every_other(aknet):
    """TSM's partial BN by role: the BatchNorm the frames meet first (the stem's conv1 BN) trains;
    an AK-Net registers its point net before its 2-D features, which must not change that."""
    from aknet_cli import create_backbone
    from aknet_cli.engine.optim import apply_partial_bn
    from aknet_cli.models.aknet import build_aknet

    model = (build_aknet("tsm_resnet18", split="res3", num_classes=3, num_segments=2, max_input_size=64) if aknet
             else create_backbone("tsm_resnet18", num_classes=3, num_segments=2))
    stem = model.features.backbone.stages["stem"] if aknet else model.stages["stem"]
    stem_bn = _batchnorms(stem)[0]
    model.train()
    frozen = apply_partial_bn(model)
    every = _batchnorms(model)
    assert frozen == len(every) - 1
    assert stem_bn.training and all(p.requires_grad for p in stem_bn.parameters())
    assert all(not m.training and not any(p.requires_grad for p in m.parameters()) for m in every if m is not stem_bn)
