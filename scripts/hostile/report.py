"""Printing and saving the sweep: a Rich table per subcommand, the summary, every failure."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .case import CLEAN, OK, QUIET, USAGE, Case, Outcome, Verdict


@dataclass
class Result:
    case: Case
    outcome: Outcome
    verdict: Verdict

    def to_dict(self) -> dict:
        c, o, v = self.case, self.outcome, self.verdict
        return {"id": c.id, "command": c.command, "name": c.name, "argv": ["aknet", *c.argv], "expect": c.expect,
                "names": list(c.names), "rc": o.rc, "seconds": round(o.seconds, 2), "passed": v.passed,
                "failure": v.kind or None, "detail": v.detail or None, "output_tail": "\n".join(o.lines[-12:])}


def summary(results: list[Result]) -> dict:
    passed = [r for r in results if r.verdict.passed]
    return {
        "total": len(results),
        "clean_one_line_errors": sum(r.case.expect == CLEAN for r in passed),
        "usage_errors_exit_2": sum(r.case.expect == USAGE for r in passed),
        "expected_successes": sum(r.case.expect == OK for r in passed),
        "quiet_exits_reader_gone": sum(r.case.expect == QUIET for r in passed),
        "failures": len(results) - len(passed),
        "failures_by_kind": dict(Counter(r.verdict.kind for r in results if not r.verdict.passed)),
        "by_command": {cmd: {"cases": n, "failures": sum(1 for r in results if r.case.command == cmd and not r.verdict.passed)}
                       for cmd, n in Counter(r.case.command for r in results).items()},
    }


def print_report(console: Console, results: list[Result], *, deep_changes: list[str], seconds: float) -> None:
    for command in dict.fromkeys(r.case.command for r in results):
        rows = [r for r in results if r.case.command == command]
        table = Table(title=f"aknet {command}" if command != "aknet" else "aknet", title_justify="left", expand=False)
        for column in ("id", "case", "expect", "exit", "s", "verdict"):
            table.add_column(column, justify="right" if column in ("exit", "s") else "left")
        for r in rows:
            verdict = "[green]pass[/]" if r.verdict.passed else f"[bold red]{escape(r.verdict.kind)}[/]"
            table.add_row(r.case.id, escape(r.case.name), r.case.expect, str(r.outcome.rc), f"{r.outcome.seconds:.1f}", verdict)
        console.print(table)
    totals = summary(results)
    console.print(
        f"\n[bold]{totals['total']} cases[/] in {seconds / 60:.1f} min: {totals['clean_one_line_errors']} clean one-line errors, "
        f"{totals['usage_errors_exit_2']} usage errors (exit 2), {totals['expected_successes']} expected successes, "
        f"{totals['quiet_exits_reader_gone']} quiet exits (reader gone), "
        f"[bold {'red' if totals['failures'] else 'green'}]{totals['failures']} failures[/]", highlight=False)
    if deep_changes:
        console.print(f"[bold red]user data changed (SHA-256 before and after the sweep):[/] {escape(', '.join(deep_changes[:10]))}")
    for r in results:
        if r.verdict.passed:
            continue
        console.print(f"\n[bold red]FAIL {r.case.id}[/] [{escape(r.verdict.kind)}] {escape(r.case.name)}: {escape(r.verdict.detail)}",
                      highlight=False)
        console.print("  $ aknet " + " ".join(_quote(a) for a in r.case.argv), markup=False, highlight=False, soft_wrap=True)
        for line in r.outcome.lines[-6:]:
            console.print(f"  | {line[:400]}", markup=False, highlight=False, soft_wrap=True)


def save_json(path: Path, results: list[Result], *, deep_changes: list[str], environment: dict) -> None:
    payload = {"summary": summary(results), "user_data_changed": deep_changes, "environment": environment,
               "cases": [r.to_dict() for r in results]}
    # a case's argument may be a file name that is not UTF-8 (lone surrogates): written as the
    # \udcXX escape JSON reads back as the same name
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8", errors="backslashreplace")


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
