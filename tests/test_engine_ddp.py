"""Two gloo processes (torchrun, CPU): the same training as one process at the same global
batch, an exact resume of a mid-epoch 2-process checkpoint, its resume on 1 process, and a
divergence that stops every rank.

The run: 4 classes × 2 training clips of 64² (res5 is 2×2), batch 4, so an epoch is 2 steps;
SGD, no dropout, BatchNorm on running statistics (``norm_eval``): each clip's gradient does not
depend on its batch mates, so averaging two half batches (DDP) equals one batch up to the
order of float32 sums.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from train_fixtures import make_synth, max_difference, weights, write_config

WORKER = Path(__file__).with_name("ddp_train_worker.py")
SETS = ["--set", "model.norm_eval=true", "--set", "ckpt.every_steps=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}


def _torchrun(nproc: int, config: Path, work: Path, *, kill_at: int = 0, resume: str = "-", sets=SETS):
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone", str(WORKER),
           str(config), str(work), str(kill_at), resume, *sets]
    if nproc == 1:
        cmd = [sys.executable, str(WORKER), str(config), str(work), str(kill_at), resume, *sets]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A straight 1-process and 2-process run of 2 epochs (4 steps), and a 2-process run
    killed after step 3 (epoch 2, step 1; ``last.pt`` written at that step)."""
    root = tmp_path_factory.mktemp("ddp")
    config = write_config(root / "run.toml", make_synth(root, classes=4, train=2, val=2, size=72), crop=64,
                          optim="sgd", lr=0.05, dropout=0.0)
    out = {"root": root, "config": config}
    for name, nproc, kill in (("one", 1, 0), ("two", 2, 0), ("killed", 2, 3)):
        result = _torchrun(nproc, config, root / name, kill_at=kill)
        assert result.returncode == (0 if not kill else 1), result.stderr[-3000:]
        out[name] = root / name
    return out


def _tolerance(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> float:
    """What float32 summation order may change, measured against what a bug would change.

    DDP averages two half-batch gradients where one process sums the whole batch: the same
    update up to rounding, which the following steps then carry and amplify (SGD with
    momentum at a high lr on running-statistics BatchNorm; seen: 0.17% of one step's update
    after four steps, the same on AVX-512 and AVX2 CPUs). A defect (a gradient summed instead of
    averaged, a rank's clips dropped or seen twice, an unsynchronised parameter) moves weights
    by the order of a whole step's update. The bound, 2% of the largest weight change of the
    last step, sits ten times above the first and thirty times below the second.
    """
    return 0.02 * max_difference(before, after)


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(runs):
    one, two = weights(runs["one"] / "last.pt"), weights(runs["two"] / "last.pt")
    after_step_3 = weights(runs["killed"] / "last.pt")  # the same 2-process run, one step earlier
    assert max_difference(one, two) <= _tolerance(after_step_3, two)
    assert sorted(p.name for p in runs["two"].iterdir()) == sorted(p.name for p in runs["one"].iterdir())
    m1, m2 = pd.read_csv(runs["one"] / "metrics.csv"), pd.read_csv(runs["two"] / "metrics.csv")
    assert m1["val_top1"].tolist() == m2["val_top1"].tolist()  # each val clip counted exactly once
    assert m1["train_loss"].tolist() == pytest.approx(m2["train_loss"].tolist(), rel=1e-5)


def test_a_mid_epoch_two_process_checkpoint_resumes_bit_identically_on_two(runs, tmp_path):
    state = torch.load(runs["killed"] / "last.pt", map_location="cpu", weights_only=True)["train_state"]
    assert (state["epoch"], state["step_in_epoch"]) == (1, 1)
    assert state["rng"]["world_size"] == 2 and len(state["rng"]["ranks"]) == 2  # each rank's own streams
    work = tmp_path / "resumed"
    work.mkdir()
    (work / "last.pt").write_bytes((runs["killed"] / "last.pt").read_bytes())
    result = _torchrun(2, runs["config"], work, resume="auto")
    assert result.returncode == 0, result.stderr[-3000:]
    straight, resumed = weights(runs["two"] / "last.pt"), weights(work / "last.pt")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert pd.read_csv(runs["two"] / "metrics.csv")["train_loss"].tolist() == \
        pd.read_csv(work / "metrics.csv")["train_loss"].tolist()


def test_a_two_process_checkpoint_resumes_on_one_process_at_the_same_global_step(runs, tmp_path):
    # Documented behaviour: the same global step and the same remaining data order; the
    # epoch's running sums of both ranks carried over; the dropout streams cannot follow.
    work = tmp_path / "single"
    work.mkdir()
    (work / "last.pt").write_bytes((runs["killed"] / "last.pt").read_bytes())
    result = _torchrun(1, runs["config"], work, resume="auto")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es), this run has 1" in result.stdout + result.stderr
    straight, resumed = weights(runs["two"] / "last.pt"), weights(work / "last.pt")
    after_step_3 = weights(runs["killed"] / "last.pt")
    assert max_difference(straight, resumed) <= _tolerance(after_step_3, straight)  # one step ran elsewhere
    m2, m1 = pd.read_csv(runs["two"] / "metrics.csv"), pd.read_csv(work / "metrics.csv")
    assert len(m1) == 2
    assert m1["train_loss"].tolist() == pytest.approx(m2["train_loss"].tolist(), rel=1e-5)


def test_a_non_finite_loss_stops_every_rank_with_the_same_line(runs, tmp_path):
    sets = [*SETS, "--set", "optim.lr=1e30", "--set", "optim.clip_grad_norm=0", "--set", "train.log_every=1"]
    result = _torchrun(2, runs["config"], tmp_path / "nan", sets=sets)
    assert result.returncode != 0
    text = result.stdout + result.stderr
    for rank in (0, 1):
        assert f"[rank{rank}]: aknet_cli.engine.state.TrainingDiverged: loss is not finite" in text, text[-3000:]


def _two_gloo_ranks(worker, *args) -> list:
    """Run ``worker(rank, 2, port, results, *args)`` in two spawned processes joined by a gloo
    group on a free local port; what each put in ``results``."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    results = mp.get_context("spawn").Queue()
    mp.start_processes(worker, args=(2, port, results, *args), nprocs=2, join=True, start_method="spawn")
    return [results.get(timeout=60) for _ in range(2)]


def _save_with_nan_on_rank_1(rank: int, world: int, port: int, results, work: str) -> None:
    import torch.distributed as dist

    from aknet_cli.engine.checkpoint_saver import save
    from aknet_cli.engine.config import RunConfig
    from aknet_cli.engine.distributed import DistContext
    from aknet_cli.engine.state import Position, TrainingDiverged

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    model = torch.nn.Linear(2, 2)
    if rank == 1:
        with torch.no_grad():
            model.weight[0, 0] = float("nan")
    run = type("R", (), {"model": model, "ctx": DistContext(rank=rank, world_size=world), "cfg": RunConfig(),
                         "kind": "backbone", "description": {}, "work_dir": Path(work)})()
    try:
        save(run, "last.pt", Position(), epoch=0, step=1, with_state=False)
        results.put((rank, "saved"))
    except TrainingDiverged as exc:
        results.put((rank, str(exc)))
    finally:
        dist.destroy_process_group()


def test_weights_that_diverged_on_one_rank_stop_every_rank_before_anything_is_written(tmp_path):
    got = dict(_two_gloo_ranks(_save_with_nan_on_rank_1, str(tmp_path)))
    assert all("weights became NaN/inf" in got[r] for r in (0, 1)), got
    assert not (tmp_path / "last.pt").exists()


def _batchnorm_statistics_under_ddp(rank: int, world: int, port: int, results) -> None:
    import torch.distributed as dist

    from aknet_cli.engine.config import RunConfig
    from aknet_cli.engine.distributed import DistContext, average_batchnorm_buffers
    from aknet_cli.engine.trainer import _wrap

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)  # the same initial weights on every rank
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4)).train()
    batches = [torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(10 * r + i)) + r
               for r in range(world) for i in range(3)]  # rank r's 3 batches, other means per rank
    _, ddp = _wrap(model, RunConfig(), DistContext(rank=rank, world_size=world))
    for x in batches[3 * rank: 3 * rank + 3]:
        ddp(x).sum().backward()
    average_batchnorm_buffers(model, DistContext(rank=rank, world_size=world))
    results.put((rank, model[1].running_mean.tolist(), model[1].running_var.tolist()))  # plain values: a
    # tensor in a queue is shared memory, gone when this process ends
    dist.destroy_process_group()


def test_each_ranks_batchnorm_statistics_are_its_own_until_averaged_over_the_ranks():
    """Every rank ends with the mean over ranks of what each rank's own clips give (no per-step
    copy of rank 0's statistics): computed here without DDP, one plain module per rank. The
    weights do not change (no optimizer step), so each rank's statistics depend on its clips only."""
    got = {rank: (torch.tensor(mean), torch.tensor(var))
           for rank, mean, var in _two_gloo_ranks(_batchnorm_statistics_under_ddp)}
    own = []
    for r in range(2):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4)).train()
        for i in range(3):
            model(torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(10 * r + i)) + r)
        own.append((model[1].running_mean, model[1].running_var))
    expected_mean, expected_var = (own[0][0] + own[1][0]) / 2, (own[0][1] + own[1][1]) / 2
    for rank in (0, 1):
        torch.testing.assert_close(got[rank][0], expected_mean, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(got[rank][1], expected_var, rtol=1e-6, atol=1e-7)
