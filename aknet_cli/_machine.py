"""What machine a measurement comes from: the CPU's model name, the kernels torch runs on it, cores.

Timings and even accuracies move between CPUs (the same seed trained on AVX-512 and AVX2
kernels rounds differently), so every figure the demo and ``aknet bench`` print names it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_model(cpuinfo: str | None = None) -> str:
    """The ``model name`` of ``/proc/cpuinfo`` (or of the text given), else what
    :mod:`platform` knows (often only ``x86_64`` on Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_description() -> str:
    """e.g. ``Intel(R) Xeon(R) Processor, AVX512 kernels, 2 cores``."""
    import torch

    return f"{cpu_model()}, {torch.backends.cpu.get_cpu_capability()} kernels, {os.cpu_count()} cores"
