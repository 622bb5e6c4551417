"""CUDA-only paths of the engine (``pytest -m cuda`` on a machine with a GPU; skipped without).

What the CPU tests cannot reach: autocast on a real GPU (bf16 where native, fp16 with a
GradScaler elsewhere), channels_last inputs and weights, cudnn.benchmark, each rank's own CUDA
generator in ``last.pt``, an exact resume under deterministic cuDNN, and evaluation on CUDA
agreeing with the CPU.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from aknet_cli.engine.config import load_config
from aknet_cli.engine.evaluate import evaluate
from aknet_cli.engine.trainer import train
from train_fixtures import Killed, kill_at, make_synth, max_difference, weights, write_config

pytestmark = pytest.mark.cuda
CUDA_SETS = ["train.device=cuda", "train.amp=true", "train.channels_last=true", "data.pin_memory=true"]


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("cuda")
    return write_config(root / "run.toml", make_synth(root), backbone="tsm_resnet18")


def test_a_cuda_run_trains_in_the_policys_dtype_with_channels_last_inputs(config, tmp_path, monkeypatch):
    seen = {}
    real_forward = torch.nn.Conv2d.forward

    def spy(self, x):  # the first conv of the stem sees the clip's frames
        seen.setdefault("input_channels_last", x.is_contiguous(memory_format=torch.channels_last))
        seen.setdefault("weight_channels_last", self.weight.is_contiguous(memory_format=torch.channels_last))
        seen.setdefault("autocast", torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else None)
        return real_forward(self, x)

    monkeypatch.setattr(torch.nn.Conv2d, "forward", spy)
    result = train(load_config(config, CUDA_SETS + ["optim.epochs=1"]), work_dir=tmp_path, progress=False)
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    assert seen == {"input_channels_last": True, "weight_channels_last": True,
                    "autocast": torch.bfloat16 if native else torch.float16}
    assert torch.backends.cudnn.benchmark
    state = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)["train_state"]
    assert bool(state["scaler"]) == (not native)  # a scaler only for fp16
    assert isinstance(state["rng"]["ranks"][0]["cuda"], torch.Tensor)  # this GPU's generator, not a list


def test_fp16_with_a_grad_scaler_where_bf16_is_not_native(config, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    result = train(load_config(config, CUDA_SETS + ["optim.epochs=1"]), work_dir=tmp_path, progress=False)
    state = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)["train_state"]
    assert state["scaler"] and state["scaler"]["scale"] > 0
    assert pd.read_csv(tmp_path / "metrics.csv")["train_loss"].notna().all()


def test_a_killed_cuda_run_resumes_as_exactly_as_two_straight_runs_agree(config, tmp_path):
    torch.backends.cudnn.deterministic = True
    try:
        cfg = load_config(config, CUDA_SETS + ["ckpt.every_steps=2"])
        a = train(cfg, work_dir=tmp_path / "a", progress=False)
        b = train(cfg, work_dir=tmp_path / "b", progress=False)
        with pytest.raises(Killed):
            train(cfg, work_dir=tmp_path / "r", progress=False, on_step_end=[kill_at(5)])
        r = train(cfg, work_dir=tmp_path / "r", resume="auto", progress=False)
        run_to_run = max_difference(weights(a.last_checkpoint), weights(b.last_checkpoint))
        assert max_difference(weights(a.last_checkpoint), weights(r.last_checkpoint)) <= run_to_run
    finally:
        torch.backends.cudnn.deterministic = False


@pytest.fixture
def float32_convolutions():
    """cuDNN convolutions run in TF32 by default on Ampere and later (A100, H100): a 10-bit
    mantissa, ~1e-3 relative per layer, which no float32 tolerance can hold. Compared in true
    float32 here (the CPU's precision), then put back."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_cuda_evaluation_agrees_with_the_cpu(config, tmp_path, float32_convolutions):
    result = train(load_config(config, ["optim.epochs=1"]), work_dir=tmp_path / "w", progress=False)
    data = load_config(config).data.dataset
    cpu = evaluate(result.best_checkpoint, data, device="cpu", out=tmp_path / "cpu", num_workers=0, progress=False)
    gpu = evaluate(result.best_checkpoint, data, device="cuda", out=tmp_path / "gpu", num_workers=0, progress=False)
    assert gpu["top1"] == cpu["top1"]
    p_cpu = pd.read_csv(tmp_path / "cpu" / "predictions.csv")
    p_gpu = pd.read_csv(tmp_path / "gpu" / "predictions.csv")
    assert p_gpu["top1_score"].tolist() == pytest.approx(p_cpu["top1_score"].tolist(), abs=1e-4)
