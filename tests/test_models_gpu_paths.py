"""What the models do on a GPU, checked on the CPU: NHWC (channels_last) frames stay NHWC through
the temporal shift and TDN's modules, an AK-Net forward reads no device value back (a host sync
per forward on CUDA), and the classifier's logits are float32 under bf16 autocast."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from aknet_cli import create_backbone
from aknet_cli.engine.scoring import channels_last_frames
from aknet_cli.layers import TemporalShift
from aknet_cli.models.aknet import build_aknet
from aknet_backbones.tdn import LearnableShift, LongTermTDM, stacked_differences
from host_sync_spy import HostSyncSpy

T = 4


def _nhwc(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


@pytest.fixture
def frames() -> tuple[torch.Tensor, torch.Tensor]:
    """``(B·T, C, H, W)`` frames, NCHW and the same values NHWC."""
    x = torch.randn(2 * T, 16, 5, 6, generator=torch.Generator().manual_seed(0))
    return x, x.contiguous(memory_format=torch.channels_last)


# --------------------------------------------------------------------------- item 6
@pytest.mark.parametrize("make", [lambda: TemporalShift(nn.Identity(), T), lambda: _shift_with_random_taps()],
                         ids=["TemporalShift", "LearnableShift"])
def test_the_temporal_shifts_keep_nhwc_frames_nhwc_with_identical_values(frames, make):
    nchw, nhwc = frames
    shift = make()
    out = shift(nhwc)
    assert _nhwc(out)
    assert torch.equal(out, shift(nchw))
    assert shift(nchw).is_contiguous()  # NCHW stays NCHW


def _shift_with_random_taps() -> LearnableShift:
    shift = LearnableShift(16, T)
    nn.init.normal_(shift.conv.weight, generator=torch.Generator().manual_seed(1))
    return shift


def test_tdns_frame_differences_are_stacked_nhwc_for_nhwc_frames():
    clips = torch.randn(2, T, 5, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    frames = clips.flatten(0, 1)
    nhwc = channels_last_frames(clips).flatten(0, 1)
    out = stacked_differences(nhwc, channels_last=True)
    assert _nhwc(out) and torch.equal(out, stacked_differences(frames, channels_last=False))


def test_tdns_long_term_module_keeps_nhwc(frames):
    nchw, nhwc = frames
    torch.manual_seed(3)
    module = LongTermTDM(nn.Conv2d(16, 16, 3, padding=1), 16, T).eval()
    module_nhwc = copy.deepcopy(module).to(memory_format=torch.channels_last)
    with torch.no_grad():
        out = module_nhwc(nhwc)
        assert _nhwc(out)
        # the same values up to the convolutions' own float32 rounding (oneDNN's NHWC kernels
        # sum in another order than its NCHW ones); the reshapes themselves are exact (above)
        torch.testing.assert_close(out, module(nchw), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["tsm_resnet18", "tdn_resnet18"])
def test_nhwc_clips_stay_nhwc_through_every_stage(name):
    torch.manual_seed(4)
    net = create_backbone(name, num_classes=3, num_segments=T).eval().to(memory_format=torch.channels_last)
    fps = net.frames_per_segment
    clips = channels_last_frames(torch.randn(1, T, *((fps,) if fps > 1 else ()), 3, 64, 64))
    with torch.no_grad():
        for stage in ("stem", "res2", "res3", "res4"):  # res5 is 2×2 here: NCHW and NHWC alike
            assert _nhwc(net.forward_until(clips, stage)), stage


# --------------------------------------------------------------------------- item 7
@pytest.mark.parametrize("position", ["embedding", "transform", "none"])
def test_an_aknet_step_reads_no_device_value_back(position):
    """On CUDA such a read (``int(coords.max())``, ``.item()``) waits for the GPU every forward."""
    torch.manual_seed(5)
    model = build_aknet("tsm_resnet18", split="res3", alpha=0.3, num_classes=3, num_segments=2, position=position,
                        max_input_size=64)
    clips, target = torch.randn(2, 2, 3, 64, 64), torch.arange(2)
    with HostSyncSpy() as spy:
        model.train()(clips).loss(target).backward()
        with torch.no_grad():
            model.eval()(clips)
    assert spy.calls == []


# --------------------------------------------------------------------------- item 8
def _classifier_input(fc: nn.Linear) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    fc.register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0]))
    return seen


@pytest.mark.parametrize("aknet", [False, True], ids=["backbone", "aknet"])
def test_logits_are_float32_under_bf16_autocast(aknet):
    """bf16's spacing at logits of 4-8 is 0.03: near-ties would be decided by the rounding."""
    torch.manual_seed(6)
    model = (build_aknet("resnet18", split="res4", num_classes=5, num_segments=2, max_input_size=64) if aknet
             else create_backbone("resnet18", num_classes=5, num_segments=2)).eval()
    fc = model.head.fc if aknet else model.fc
    seen = _classifier_input(fc)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.randn(3, 2, 3, 64, 64))
    assert logits.dtype == torch.float32
    expected = nn.functional.linear(seen["x"].float(), fc.weight, fc.bias)
    if not aknet:
        expected = expected.view(-1, 2, 5).mean(dim=1)  # TSN's consensus over the frames
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-6)
