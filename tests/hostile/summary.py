"""The sweep's closing summary (a pytest plugin conftest.py registers): a line per subcommand with
its cases and failures, the passed cases by what they expected, and the machine it ran on, so that
a sweep's timing can be quoted with its conditions (docs/testing.md). Silent in a session that ran
no hostile case."""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest

from .case import CLEAN, OK, QUIET, USAGE

_EXPECTED = ((CLEAN, "clean one-line errors"), (USAGE, "usage errors (exit 2)"), (OK, "expected successes"),
             (QUIET, "quiet exits (reader gone)"))


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class CommandSummary:
    def __init__(self) -> None:
        self.cases: dict[str, tuple[str, str]] = {}  # nodeid -> (command, expect)
        self.failed: set[str] = set()  # nodeids with a failed phase (setup, call or teardown)
        self.started, self.load_before = time.monotonic(), _load()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        if "command" not in properties:
            return
        self.cases[report.nodeid] = (properties["command"], properties["expect"])
        if report.failed:
            self.failed.add(report.nodeid)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.cases:
            return
        from aknet_cli._machine import cpu_model

        write = terminalreporter.write_line
        terminalreporter.write_sep("=", "hostile cases by command")
        per_command = Counter(command for command, _ in self.cases.values())
        failures = Counter(self.cases[nodeid][0] for nodeid in self.failed)
        write(f"{'command':12} {'cases':>6} {'failed':>7}")
        for command, count in per_command.items():
            write(f"{command:12} {count:6d} {failures[command]:7d}")
        passed = Counter(expect for nodeid, (_, expect) in self.cases.items() if nodeid not in self.failed)
        counts = ", ".join(f"{passed[expect]} {label}" for expect, label in _EXPECTED)
        minutes = (time.monotonic() - self.started) / 60
        write(f"{len(self.cases)} cases in {minutes:.1f} min: {counts}, {len(self.failed)} failures")
        write(f"{cpu_model()}, {os.cpu_count()} cores, load {self.load_before} -> {_load()}")
