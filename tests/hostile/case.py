"""A hostile case, what its run produced, and the assertions that judge it.

Every case states what it expects:

* ``clean``: exit status 1 and exactly one line on stdout + stderr, naming the thing
  (every fragment of ``names``), no traceback: the promise for a user mistake;
* ``usage``: exit status 2 and one line (Click's convention for a usage error);
* ``quiet``: exit status 1 and no output at all (a reader that left the pipe: what a Unix
  tool does when ``head`` has gone);
* ``ok``: exit status 0, and ``check`` proves the output is right (no silent wrong success);
  ``warns`` are fragments the run must show (a skip summary, a warning), so that a swallowed
  warning is a failure too.

Whatever it expects, a case fails when the user's files changed, a traceback shows, or the
command ran past its timeout.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NoReturn, Optional

import pytest

#: A plain progress line: ``2026-12-07 02:56:15  frames sthv1 | clip 8/8 | ...``.
PROGRESS_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  \S")

CLEAN, USAGE, OK, QUIET = "clean", "usage", "ok", "quiet"
EXPECTATIONS = (CLEAN, USAGE, OK, QUIET)
_EXIT = {CLEAN: 1, USAGE: 2, OK: 0, QUIET: 1}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: How much of the output a failure shows.
TAIL_LINES = 12


@dataclass
class Outcome:
    """What one run left: its exit status (``None`` after a timeout), its streams, its time."""

    rc: Optional[int]
    stdout: str
    stderr: str
    seconds: float

    @property
    def text(self) -> str:
        return _ANSI.sub("", self.stderr + self.stdout)

    @property
    def lines(self) -> list[str]:
        """Non-blank lines of stderr then stdout, colour codes removed, without the timestamped
        progress lines a long loop prints where stderr is not a terminal (aknet_cli._progress):
        an error found after work began (every clip of a release missing) follows them."""
        return [line for line in self.text.splitlines() if line.strip() and not PROGRESS_LINE.match(line)]


#: ``check(outcome, case_dir)`` returns what is wrong, or ``None`` when the result is right.
Check = Callable[[Outcome, Path], Optional[str]]


@dataclass
class Case:
    """One ``aknet ...`` run and what it must do (see the module docstring).

    Attributes:
        command: the subcommand the case belongs to (its line in the summary), e.g. ``"prepare"``.
        name: a short description of the hostile input (the test id).
        argv: the arguments after ``aknet``.
        expect: ``clean``, ``usage``, ``ok`` or ``quiet``.
        names: fragments the error line must contain (the path, option or key it is about); a
            tuple of fragments is met by any one of them (see :func:`option_or_word`).
        check: for ``ok``, what proves the output right; for errors, an extra condition (e.g.
            that a malicious pickle did not run).
        warns: fragments an ``ok`` run must print (a skip summary, a warning).
        setup: builds per-case inputs inside the case's folder before the run.
        run: replaces the plain run (two processes at once, an interrupt), called with the
            case, its folder, the environment and the aknet executable; returns the
            outcome that is judged.
        env: extra environment variables.
        timeout: seconds before the run is killed and counted as a timeout.
    """

    command: str
    name: str
    argv: list[str]
    expect: str
    names: tuple[str | tuple[str, ...], ...] = ()
    check: Optional[Check] = None
    warns: tuple[str, ...] = ()
    setup: Optional[Callable[[Path], None]] = None
    run: Optional[Callable[["Case", Path, dict, str], Outcome]] = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 240.0

    def __post_init__(self) -> None:
        if self.expect not in EXPECTATIONS:
            raise ValueError(f"{self.name}: expect must be one of {EXPECTATIONS}, got {self.expect!r}")
        self.argv = [str(a) for a in self.argv]


def option_or_word(option: str) -> tuple[str, ...]:
    """A name fragment met by the option (``--transform-rank``) or the words it stands for
    (``transform rank``): a library's check names the parameter, not the flag it came from."""
    return (option, option.lstrip("-").replace("-", " "))


# ---------------------------------------------------------------------------- assertions
def assert_as_expected(case: Case, outcome: Outcome, changed: list[str], case_dir: Path) -> None:
    """Fail the test unless the run did what ``case`` expects (see the module docstring);
    ``changed`` lists user files whose contents or metadata differ after the run."""
    assert_no_harm(case, outcome, changed)
    if case.expect == OK:
        assert_success(case, outcome, case_dir)
    elif case.expect == QUIET:
        assert_quiet(case, outcome)
    else:
        assert_one_line_error(case, outcome, case_dir)


def assert_no_harm(case: Case, outcome: Outcome, changed: list[str]) -> None:
    """Whatever the case expects: it ended in time, left the user's files alone, showed no
    traceback and was not killed by a signal."""
    if outcome.rc is None:
        fail(case, outcome, "timeout", f"ran past {case.timeout:.0f} s")
    if changed:
        fail(case, outcome, "modified user data", ", ".join(changed[:3]) + (" ..." if len(changed) > 3 else ""))
    if "Traceback" in outcome.text:
        fail(case, outcome, "traceback", _last_line(outcome))
    if outcome.rc < 0:
        fail(case, outcome, "crash", f"killed by signal {-outcome.rc}")


def assert_success(case: Case, outcome: Outcome, case_dir: Path) -> None:
    if outcome.rc != 0:
        fail(case, outcome, "wrong exit code", f"exit {outcome.rc}, expected 0: {_last_line(outcome)}")
    missing = [w for w in case.warns if w not in outcome.text]
    if missing:
        fail(case, outcome, "swallowed warning", f"never printed {missing[0]!r}")
    problem = _run_check(case, outcome, case_dir)
    if problem:
        fail(case, outcome, "silent wrong success", problem)


def assert_quiet(case: Case, outcome: Outcome) -> None:
    if outcome.lines:
        fail(case, outcome, "several lines" if len(outcome.lines) > 1 else "not quiet", " ⏎ ".join(outcome.lines[:4]))
    if outcome.rc != _EXIT[QUIET]:
        fail(case, outcome, "wrong exit code", f"exit {outcome.rc}, expected {_EXIT[QUIET]}, silently")


def assert_one_line_error(case: Case, outcome: Outcome, case_dir: Path) -> None:
    expected = _EXIT[case.expect]
    lines = outcome.lines
    if outcome.rc == 0:
        fail(case, outcome, "silent wrong success", f"exit 0 where a {case.expect} error was due: {_last_line(outcome)}")
    if not lines:
        fail(case, outcome, "no message", f"exit {outcome.rc} with no output at all")
    if outcome.rc != expected:
        fail(case, outcome, "wrong exit code", f"exit {outcome.rc}, expected {expected}: {_last_line(outcome)}")
    if len(lines) > 1:
        fail(case, outcome, "several lines", f"{len(lines)} lines: " + " ⏎ ".join(lines[:4]))
    missing = [n for n in case.names if not any(alt in lines[0] for alt in _alternatives(n))]
    if missing:
        fail(case, outcome, "not named",
             f"the line does not name {' or '.join(map(repr, _alternatives(missing[0])))}: {lines[0]}")
    problem = _run_check(case, outcome, case_dir)
    if problem:
        fail(case, outcome, "wrong result", problem)


def fail(case: Case, outcome: Outcome, kind: str, detail: str) -> NoReturn:
    """End the test with what went wrong, the command, and the tail of its output (no Python
    traceback of this helper: the failure is the command's, not the test's)."""
    tail = [f"  | {line[:400]}" for line in outcome.lines[-TAIL_LINES:]] or ["  (no output)"]
    command = "  $ aknet " + " ".join(shlex.quote(a) for a in case.argv)
    pytest.fail("\n".join([f"{kind}: {detail}", command, *tail]), pytrace=False)


def _run_check(case: Case, outcome: Outcome, case_dir: Path) -> Optional[str]:
    if case.check is None:
        return None
    try:
        return case.check(outcome, case_dir)
    except Exception as exc:  # a check that cannot read the output: the output is wrong
        return f"the check failed on the output: {type(exc).__name__}: {exc}"


def _alternatives(name: str | tuple[str, ...]) -> tuple[str, ...]:
    return (name,) if isinstance(name, str) else tuple(name)


def _last_line(outcome: Outcome) -> str:
    lines = outcome.lines
    return lines[-1][:300] if lines else "(no output)"
