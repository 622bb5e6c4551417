"""aknet_cli._machine: the CPU a figure comes from."""

from __future__ import annotations

import os

import torch

from aknet_cli import _machine

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu avx2

processor\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
"""


def test_the_model_name_of_the_first_processor():
    assert _machine.cpu_model(CPUINFO) == "AMD EPYC 7B13 64-Core Processor"


def test_without_a_model_name_platform_answers(monkeypatch):
    monkeypatch.setattr(_machine.platform, "processor", lambda: "")
    monkeypatch.setattr(_machine.platform, "machine", lambda: "aarch64")
    assert _machine.cpu_model("processor\t: 0\nBogoMIPS\t: 50.00\n") == "aarch64"


def test_an_unreadable_cpuinfo_is_not_an_error(monkeypatch, tmp_path):
    monkeypatch.setattr(_machine, "CPUINFO", tmp_path / "missing")
    assert _machine.cpu_model()  # whatever platform knows, never an exception


def test_the_description_names_the_kernels_and_cores():
    text = _machine.cpu_description()
    assert f"{torch.backends.cpu.get_cpu_capability()} kernels" in text
    assert text.endswith(f"{os.cpu_count()} cores")
