"""One way to report an error: a single line on stderr, `error: <where>: <what> — <what to do>`,
and a non-zero exit; never a traceback.

Commands raise `CliError` (or let the stages' own exceptions through); `OneLineErrors`, the
typer group every command runs in, turns whatever escapes into that line. Set CSWF_TRACEBACK=1 to
see the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import duckdb
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from cswf.clitools.times import read_times_one_way
from cswf.engine.failures import EvaluationFailed
from cswf.project import BlockedTick, SpecErrors, TickHeld
from cswf.specs.common import did_you_mean
from cswf.specs.groups import GroupsError
from cswf.store.lock import WarehouseLocked

TRACEBACK_ENV = "CSWF_TRACEBACK"
_LOCK = re.compile(r'Could not set lock on file "(?P<file>[^"]+)"(?:.*?\(PID (?P<pid>\d+)\))?')


class CliError(typer.TyperException):
    """A problem a person can fix: where it is (a file or an option), what is wrong, what to do.
    Exit code 1; 2 for a command line typer could not parse (the usual usage-error code)."""

    def __init__(self, where: str | None, what: str, todo: str | None = None,
                 exit_code: int = 1) -> None:
        self.where, self.what, self.todo = where, what, todo
        super().__init__(self.line())
        self.exit_code = exit_code

    def line(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text} — {self.todo}" if self.todo else text

    def format_message(self) -> str:
        return self.line()


__all__ = ["CliError", "OneLineErrors", "did_you_mean", "explain", "one_line", "report"]


# What to do when DuckDB runs out of the memory it may use (settings' memory_limit)
OUT_OF_MEMORY = ("give DuckDB more: raise memory_limit in cswf.yaml (or CSWF_MEMORY_LIMIT), or "
                 "unset it for DuckDB's default, 80% of the machine's memory")


def explain(exc: BaseException) -> CliError:
    """The one line for any exception a command let through."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, typer.TyperException):  # typer's own: usage errors and the like
        error = _typer_error(exc)
        error.exit_code = exc.exit_code
        return error
    if isinstance(exc, WarehouseLocked):
        after = f" after waiting {exc.waited:.0f}s" if exc.waited else ""
        return CliError(str(exc.path), f"the database is in use by {exc.holder}{after}",
                        "wait until it finishes (a Dagster run, `dagster dev` or another cswf "
                        "command) or stop it, then try again, or let cswf wait: `cswf --wait "
                        "SECONDS <command>`; BI tools read the BI copy instead (docs/bi.md)")
    if isinstance(exc, duckdb.IOException) and (lock := _LOCK.search(str(exc))):
        holder = f" (PID {lock['pid']})" if lock["pid"] else ""
        return CliError(lock["file"], f"the database is in use by another process{holder}",
                        "wait until it finishes (a Dagster run, `dagster dev` or another cswf "
                        "command) or stop it, then try again")
    if isinstance(exc, SpecErrors):
        first = exc.errors[0]
        more = f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
        return CliError(None, f"{one_line(str(first))}{more}",
                        "run `cswf validate` to see every problem, fix the spec, try again")
    if isinstance(exc, BlockedTick):
        return CliError("landing files", one_line(str(exc)),
                        "fix or remove the files named, then run again (a known change: list "
                        "its day under snapshots.accept in cswf.yaml)")
    if isinstance(exc, TickHeld):  # its message names the tick and the commands that decide it
        return CliError(None, str(exc))
    if isinstance(exc, EvaluationFailed):
        return CliError(None, one_line(str(exc)), "fix the workflow's spec (`cswf validate` "
                        "checks its bounds) or its facts; nothing of this tick was written")
    if isinstance(exc, GroupsError):
        return CliError(None, one_line(str(exc)), "fix the user groups file")
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or None
        return CliError(where, first["msg"])
    if isinstance(exc, typer.Abort):
        return CliError(None, "interrupted")
    if isinstance(exc, duckdb.OutOfMemoryException):
        return CliError(None, one_line(str(exc)), OUT_OF_MEMORY)
    if isinstance(exc, LookupError | ValueError | OSError | duckdb.Error):
        return CliError(None, one_line(str(exc) or type(exc).__name__))
    return CliError(None, f"unexpected {type(exc).__name__}: {one_line(str(exc))}",
                    f"run again with {TRACEBACK_ENV}=1 to see where, and report it")


def _typer_error(exc: typer.TyperException) -> CliError:
    """Typer's usage errors (bad, missing or unknown option, unknown command) as one line.

    Typer exports only their base class, so they are told apart by what they carry: a bad or
    missing value has `param`, an unknown option `option_name`."""
    ctx = getattr(exc, "ctx", None)
    todo = f"see `{ctx.command_path if ctx is not None else 'cswf'} --help`"
    param = getattr(exc, "param", None)
    option = getattr(exc, "option_name", None)
    if param is not None:
        where = _param_name(param)
        if not exc.message:  # a missing one: typer words it "Missing option '--start'."
            return CliError(where, "missing", f"give it; {todo}")
        return CliError(where, one_line(exc.message.removeprefix("Value error, ")))
    if option is not None:
        close = getattr(exc, "possibilities", None) or []
        hint = f"did you mean {' or '.join(sorted(close))}? " if close else ""
        return CliError(option, "no such option", hint + todo)
    message = one_line(exc.format_message()).rstrip(".")
    return CliError(None, message[:1].lower() + message[1:], todo if ctx is not None else None)


def _param_name(param: Any) -> str:
    """`--start` for an option, `WORKFLOW` for an argument."""
    if getattr(param, "param_type_name", "") == "option" and param.opts:
        return max(param.opts, key=len)
    return str(param.name).upper()


def one_line(text: str) -> str:
    """A multi-line message (a list of problems) as one line, its parts joined by `; `."""
    parts = [part.strip(" -") for part in text.splitlines() if part.strip(" -")]
    return "; ".join(parts).replace(":; ", ": ")


class OneLineErrors(TyperGroup):
    """The group every `cswf` command runs in: times read one way, errors reported one way.

    A `typer.Typer(cls=...)` group; its `main` runs the command in typer's non-standalone mode,
    so every exception reaches `explain` instead of typer's own (multi-line) reporting.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        read_times_one_way(self)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        args = list(sys.argv[1:] if args is None else args) or ["--help"]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except Exception as exc:
            if os.environ.get(TRACEBACK_ENV):
                raise
            error = explain(exc)
            report(error)
            sys.exit(error.exit_code)
        sys.exit(result if isinstance(result, int) else 0)


def report(error: CliError) -> None:
    """Print the error line on stderr: never wrapped, never markup."""
    Console(stderr=True, soft_wrap=True).print(
        Text.assemble(("error:", "bold red"), " ", error.line()), soft_wrap=True)
