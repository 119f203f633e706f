"""How the command line answers bad input: one line on stderr and a non-zero exit, never a traceback.

A `CliError` carries the same machine-readable reason the HTTP API gives for the same input
(`invalid_field`, `unknown_command_type`, `invalid_identifier`...). Click's own usage errors
(a missing argument, a bad option value) are cut to their message; any other exception is
reported as one line naming its type (`STREAMS_DEBUG=1` shows the traceback instead).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(click.ClickException):
    """Bad input or a missing thing, said in one line; `reason` is the HTTP API's reason."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason

    def format_message(self) -> str:
        """The message, with its reason when it has one."""
        return f"{self.message} ({self.reason})" if self.reason else self.message


def one_line(text: str) -> str:
    """`text` on one line (a multi-line message joined, surrounding space dropped)."""
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def fail(message: str, code: int) -> NoReturn:
    """Print `error: <message>` on stderr and exit with `code`."""
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


class OneLineErrors(click.Group):
    """A click group whose errors are one line on stderr and a non-zero exit status."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; in standalone mode, every failure becomes one line."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            fail("aborted", EXIT_ERROR)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except Exception as exc:
            if os.environ.get("STREAMS_DEBUG") == "1":
                raise
            said = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # no repr quotes
            fail(f"{type(exc).__name__}: {said}", EXIT_ERROR)
        sys.exit(result if isinstance(result, int) else 0)
