"""``python -m aknet_cli`` (what ``torchrun -m aknet_cli train CONFIG`` runs on every process)."""

from .cli.main import run

run()
