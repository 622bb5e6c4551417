"""A hostile case, what its run produced, and the verdict on it.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

#: A plain progress line: ``2026-12-07 02:56:15  frames sthv1 | clip 8/8 | ...``.
PROGRESS_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  \S")

CLEAN, USAGE, OK, QUIET = "clean", "usage", "ok", "quiet"
EXPECTATIONS = (CLEAN, USAGE, OK, QUIET)
_EXIT = {CLEAN: 1, USAGE: 2, OK: 0, QUIET: 1}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


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
        command: the subcommand the case belongs to (its report table), e.g. ``"prepare"``.
        name: a short description of the hostile input.
        argv: the arguments after ``aknet``.
        expect: ``clean``, ``usage`` or ``ok``.
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
    id: str = ""

    def __post_init__(self) -> None:
        if self.expect not in EXPECTATIONS:
            raise ValueError(f"{self.name}: expect must be one of {EXPECTATIONS}, got {self.expect!r}")
        self.argv = [str(a) for a in self.argv]


@dataclass
class Verdict:
    """``passed``, or the kind of failure and what was seen."""

    passed: bool
    kind: str = ""
    detail: str = ""


def judge(case: Case, outcome: Outcome, changed: list[str], case_dir: Path) -> Verdict:
    """The verdict on ``outcome`` (see the module docstring); ``changed`` lists user files
    whose contents or metadata differ after the run."""
    text = outcome.text
    if outcome.rc is None:
        return Verdict(False, "timeout", f"ran past {case.timeout:.0f} s")
    if changed:
        return Verdict(False, "modified user data", ", ".join(changed[:3]) + (" ..." if len(changed) > 3 else ""))
    if "Traceback" in text:
        return Verdict(False, "traceback", _last_line(outcome))
    if outcome.rc < 0:
        return Verdict(False, "crash", f"killed by signal {-outcome.rc}")
    if case.expect == OK:
        return _judge_success(case, outcome, case_dir)
    if case.expect == QUIET:
        if outcome.lines:
            return Verdict(False, "several lines" if len(outcome.lines) > 1 else "not quiet", " ⏎ ".join(outcome.lines[:4]))
        if outcome.rc != _EXIT[QUIET]:
            return Verdict(False, "wrong exit code", f"exit {outcome.rc}, expected {_EXIT[QUIET]}, silently")
        return Verdict(True)
    return _judge_error(case, outcome, case_dir)


def _judge_success(case: Case, outcome: Outcome, case_dir: Path) -> Verdict:
    if outcome.rc != 0:
        return Verdict(False, "wrong exit code", f"exit {outcome.rc}, expected 0: {_last_line(outcome)}")
    missing = [w for w in case.warns if w not in outcome.text]
    if missing:
        return Verdict(False, "swallowed warning", f"never printed {missing[0]!r}")
    problem = _run_check(case, outcome, case_dir)
    if problem:
        return Verdict(False, "silent wrong success", problem)
    return Verdict(True)


def _judge_error(case: Case, outcome: Outcome, case_dir: Path) -> Verdict:
    expected = _EXIT[case.expect]
    lines = outcome.lines
    if outcome.rc == 0:
        return Verdict(False, "silent wrong success", f"exit 0 where a {case.expect} error was due: {_last_line(outcome)}")
    if not lines:
        return Verdict(False, "no message", f"exit {outcome.rc} with no output at all")
    if outcome.rc != expected:
        return Verdict(False, "wrong exit code", f"exit {outcome.rc}, expected {expected}: {_last_line(outcome)}")
    if len(lines) > 1:
        return Verdict(False, "several lines", f"{len(lines)} lines: " + " ⏎ ".join(lines[:4]))
    missing = [n for n in case.names if not any(alt in lines[0] for alt in ((n,) if isinstance(n, str) else n))]
    if missing:
        return Verdict(False, "not named", f"the line does not name {' or '.join(map(repr, _alternatives(missing[0])))}: "
                                           f"{lines[0]}")
    problem = _run_check(case, outcome, case_dir)
    if problem:
        return Verdict(False, "wrong result", problem)
    return Verdict(True)


def _run_check(case: Case, outcome: Outcome, case_dir: Path) -> Optional[str]:
    if case.check is None:
        return None
    try:
        return case.check(outcome, case_dir)
    except Exception as exc:  # a check that cannot read the output: the output is wrong
        return f"the check failed on the output: {type(exc).__name__}: {exc}"


def _alternatives(name) -> tuple[str, ...]:
    return (name,) if isinstance(name, str) else tuple(name)


def option_or_word(option: str) -> tuple[str, ...]:
    """A name fragment met by the option (``--transform-rank``) or the words it stands for
    (``transform rank``): a library's check names the parameter, not the flag it came from."""
    return (option, option.lstrip("-").replace("-", " "))


def _last_line(outcome: Outcome) -> str:
    lines = outcome.lines
    return lines[-1][:300] if lines else "(no output)"
