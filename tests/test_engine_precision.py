"""The one mixed-precision policy (train, eval, bench), the GradScaler on resume, and every
rank's own random streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aknet_cli.engine import rng
from aknet_cli.engine.distributed import DistContext
from aknet_cli.engine.precision import autocast_dtype, grad_scaler, restore_scaler

CUDA = torch.device("cuda")


def _fake_gpu(monkeypatch, *, native: bool) -> None:
    """``is_bf16_supported`` as torch answers it on a V100/T4 (emulated: True unless emulation
    is excluded) or on an A100/H100 (native)."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: native or including_emulation)


def test_emulated_bf16_gets_float16_with_a_scaler(monkeypatch):
    _fake_gpu(monkeypatch, native=False)
    assert torch.cuda.is_bf16_supported()  # what the old check read: "supported"
    assert autocast_dtype(CUDA, True) == torch.float16
    assert grad_scaler(torch.device("cpu"), torch.float16).is_enabled()


def test_native_bf16_gets_bfloat16_without_a_scaler(monkeypatch):
    _fake_gpu(monkeypatch, native=True)
    assert autocast_dtype(CUDA, True) == torch.bfloat16
    assert not grad_scaler(torch.device("cpu"), torch.bfloat16).is_enabled()


def test_no_autocast_on_the_cpu_or_without_amp(monkeypatch):
    _fake_gpu(monkeypatch, native=True)
    assert autocast_dtype(torch.device("cpu"), True) is None
    assert autocast_dtype(CUDA, False) is None


def test_bench_times_what_training_runs(monkeypatch):
    from aknet_cli.analysis import bench
    from aknet_cli.exceptions import ConfigError

    _fake_gpu(monkeypatch, native=True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "fake GPU")
    env = bench.environment(bench.BenchConfig(device="cuda", amp=True))
    assert env["amp"] == "bfloat16"  # was float16 while training used bf16 on the same GPU
    with pytest.raises(ConfigError, match="--amp"):
        bench.BenchConfig(device="cpu", amp=True).validate()


def test_a_scaler_state_saved_without_fp16_resumes_under_fp16():
    scaler = torch.amp.GradScaler("cpu", enabled=True)  # where fp16 is picked
    with pytest.raises(RuntimeError):
        scaler.load_state_dict({})  # what resuming a bf16/CPU run's last.pt did
    note = restore_scaler(scaler, {})
    assert "default scale" in note and scaler.get_scale() == 65536.0
    assert restore_scaler(torch.amp.GradScaler("cpu", enabled=False), {"scale": 2.0}) is None


def test_ranks_draw_different_dropout_masks_and_rank_0_is_seeded_as_before():
    masks = []
    for rank in (0, 1):
        rng.seed_everything(7, rank)
        masks.append(torch.nn.functional.dropout(torch.ones(1000), 0.5))
    torch.manual_seed(7)
    assert torch.equal(masks[0], torch.nn.functional.dropout(torch.ones(1000), 0.5))
    assert not torch.equal(masks[0], masks[1])


def test_each_rank_restores_its_own_streams():
    states = []
    for rank in (0, 1):
        rng.seed_everything(11, rank)
        states.append(rng.capture())
    saved = {"world_size": 2, "ranks": states}
    expected = [None, None]
    for rank in (0, 1):
        rng.restore(states[rank])
        expected[rank] = (torch.rand(3), np.random.rand(), )
    for rank in (0, 1):
        assert rng.restore_rank(saved, DistContext(rank=rank, world_size=2), seed=11) is None
        drawn = (torch.rand(3), np.random.rand())
        assert torch.equal(drawn[0], expected[rank][0]) and drawn[1] == expected[rank][1]


def test_another_world_size_restores_what_exists_and_says_so():
    rng.seed_everything(5, 0)
    saved = {"world_size": 1, "ranks": [rng.capture()]}
    note = rng.restore_rank(saved, DistContext(rank=1, world_size=2), seed=5)
    assert "1 process(es), this run has 2" in note
    fresh = torch.rand(3)
    rng.seed_everything(5, 1)
    assert torch.equal(fresh, torch.rand(3))  # a rank the checkpoint does not have starts at seed + rank


def test_a_checkpoint_of_an_8_gpu_node_resumes_on_a_machine_with_fewer_gpus(monkeypatch):
    # Before per-rank states, rank 0 saved every visible GPU's generator and every rank handed
    # that list to set_rng_state_all: an IndexError on a machine with fewer GPUs.
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": calls.append(state))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: (_ for _ in ()).throw(IndexError))
    legacy = rng.capture()
    legacy["cuda"] = [torch.full((8,), i, dtype=torch.uint8) for i in range(8)]
    rng.restore_rank(legacy, DistContext(rank=0, world_size=1), seed=0)
    assert len(calls) == 1 and torch.equal(calls[0], legacy["cuda"][0])  # GPU 0's stream: rank 0's


def test_a_clips_seed_leaves_the_cuda_generators_alone(monkeypatch, tmp_path):
    from aknet_cli.engine.run_loaders import SeededClips

    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: reseeded.append(seed))

    class One(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return torch.rand(2)

    a, b = SeededClips(One())[(0, 123)], SeededClips(One())[(0, 123)]
    assert torch.equal(a, b)  # the clip's draws are its seed's
    assert reseeded == []  # torch.manual_seed would have reseeded every GPU's generator


@pytest.mark.parametrize("backbone", ["tsm_resnet18", "tdn_resnet18"])
def test_channels_last_clips_reach_the_first_conv_as_nhwc_and_change_nothing(backbone):
    from aknet_cli import create_backbone
    from aknet_cli.engine.scoring import channels_last_frames

    net = create_backbone(backbone, num_classes=3, num_segments=2).eval()
    fps = net.frames_per_segment
    x = torch.randn((1, 2, 3, 32, 32) if fps == 1 else (1, 2, fps, 3, 32, 32))
    laid = channels_last_frames(x)
    assert torch.equal(laid, x) and laid.shape == x.shape
    seen = []
    stem_conv = net.stages["stem"][0]  # the RGB path's first conv (TDN's difference path stacks frames)
    hook = stem_conv.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].stride(1) == 1 and args[0].stride(3) == args[0].shape[1]))
    with torch.no_grad():
        out = net(laid)
    hook.remove()
    assert seen == [True]  # NHWC strides (channels fastest): the backbone's reshape kept the layout
    with torch.no_grad():
        assert torch.allclose(out, net(x), atol=1e-5)
