"""Run a function on several gloo ranks (spawned processes, CPU), as torchrun would start them,
and collect each rank's outcome, a rank that never reports included (a hang in a collective)."""

from __future__ import annotations

import os
import queue
import socket
import time
from typing import Any, Callable

import torch.multiprocessing as mp

#: what a rank that has not reported within the time limit gets: waiting in a collective
HANG = ("hang", "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(target: Callable[..., Any], world: int, *args: Any, timeout: float = 120.0) -> dict[int, tuple[str, Any]]:
    """``target(rank, *args)`` on ``world`` ranks; ``{rank: ("ok", value) | (exception class name,
    message) | HANG}``. A rank that hangs is killed after ``timeout`` seconds (all ranks together)."""
    port = free_port()
    ctx = mp.get_context("spawn")
    results: Any = ctx.Queue()
    procs = [ctx.Process(target=_rank_main, args=(rank, world, port, target, args, results), daemon=True)
             for rank in range(world)]
    for proc in procs:
        proc.start()
    outcomes: dict[int, tuple[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(outcomes) < world and time.monotonic() < deadline:
        try:
            rank, outcome = results.get(timeout=1.0)
        except queue.Empty:
            continue
        outcomes[rank] = outcome
    for proc in procs:
        proc.join(timeout=10 if len(outcomes) == world else 0.1)
        if proc.is_alive():
            proc.kill()
            proc.join()
    return {rank: outcomes.get(rank, HANG) for rank in range(world)}


def _rank_main(rank: int, world: int, port: int, target, args, results) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    import torch

    from aknet_cli.engine.distributed import teardown

    torch.set_num_threads(1)
    try:
        results.put((rank, ("ok", target(rank, *args))))
    except Exception as exc:  # noqa: BLE001 the outcome is what the test looks at
        results.put((rank, (type(exc).__name__, str(exc))))
    finally:
        teardown()
