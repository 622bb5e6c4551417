"""Helpers shared by the subcommands: consoles, the domain-error boundary, JSON output."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from typing import Any, Callable, Iterator

import typer
from rich.console import Console
from rich.markup import escape
from typer import _click
from typer.core import TyperGroup

from ..exceptions import AKNetError, RankZeroDecided

console = Console()
err_console = Console(stderr=True)


def domain_errors(func: Callable) -> Callable:
    """Turn an :class:`AKNetError` into one red line on stderr and exit status 1.

    Under torchrun an error rank 0 decided for every rank is printed by rank 0 alone (the
    others exit 1 silently: :class:`~aknet_cli.exceptions.RankZeroDecided`). Anything else is
    a bug and keeps its traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            return func(*args, **kwargs)
        except AKNetError as exc:
            if not isinstance(exc, RankZeroDecided):
                print_error(str(exc))
            raise typer.Exit(1) from None

    return wrapper


def print_error(message: str) -> None:
    """The one red line every user mistake ends in."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)


class OneLineErrors(TyperGroup):
    """The root command group: Click's usage errors (a value of the wrong type, an unknown
    command or option, a stray argument) as one line on stderr with exit status 2, Click's
    convention for usage errors, instead of its multi-line box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode: bool = True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _click.exceptions.NoArgsIsHelpError:
            sys.exit(2)  # the help has been printed: what a bare `aknet prepare` asks for
        except _click.exceptions.UsageError as exc:
            hint = f"; see '{exc.ctx.command_path} --help'" if exc.ctx is not None else ""
            print_error(" ".join(exc.format_message().split()).rstrip(".") + hint)
            sys.exit(exc.exit_code)
        except _click.exceptions.ClickException as exc:
            print_error(" ".join(exc.format_message().split()))
            sys.exit(exc.exit_code)
        except typer.Abort:  # typer's own class: its vendored click has none
            print_error("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@contextlib.contextmanager
def quiet_when_the_reader_leaves() -> Iterator[None]:
    """End quietly with status 1 when whoever reads stdout has gone (``aknet ... | head``).

    Click already ends a command quietly on a broken pipe met while it runs; this covers the
    output still buffered when the command returns, which Python would flush at exit into
    "Exception ignored ... BrokenPipeError" and status 120. The idiom of Python's docs on
    SIGPIPE: point stdout at /dev/null, so that the exit's own flush has somewhere to go.
    """
    try:
        yield
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)


def comma_list(text: str, option: str, convert: Callable[[str], Any] = str, *, kind: str = "names",
               example: str = "1,8", unique: bool = True) -> tuple:
    """``text`` split at commas, each item stripped and converted, duplicates dropped in order
    (kept with ``unique=False``, for a caller that refuses them itself).

    Raises:
        ConfigError: an empty item (``1,,8``, a trailing comma, nothing at all) or one that
            ``convert`` refuses.
    """
    from ..exceptions import ConfigError

    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ConfigError(f"{option} expects a comma-separated list without empty items, e.g. {example}; got {text!r}")
    try:
        values = tuple(convert(item) for item in items)
        return tuple(dict.fromkeys(values)) if unique else values
    except ValueError:
        raise ConfigError(f"{option} expects comma-separated {kind}, e.g. {example}; got {text!r}") from None


def print_json(payload: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
