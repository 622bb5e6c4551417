"""Run by the tests under ``torchrun``: ``train()`` through the Python API, optionally killed
after a given global step (``KILL_AT``; 0 = never) and optionally resuming (``RESUME``).

    torchrun --nproc_per_node=2 --standalone tests/ddp_train_worker.py CONFIG WORK KILL_AT RESUME [--set k=v ...]

Exit status 3 means "killed as asked" (the checkpoint on disk is what a SIGKILL would leave).
"""

import sys

from aknet_cli.engine.config import load_config
from aknet_cli.engine.distributed import teardown
from aknet_cli.engine.trainer import train


class Killed(Exception):
    pass


def main() -> int:
    config, work, kill_at, resume, *rest = sys.argv[1:]
    sets = [rest[i + 1] for i in range(0, len(rest), 2)]

    def kill(step: int) -> None:
        if step == int(kill_at):
            raise Killed

    try:
        train(load_config(config, sets), work_dir=work, resume=None if resume == "-" else resume, progress=True,
              on_step_end=[kill])
    except Killed:
        return 3
    finally:
        teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
