"""The `si4tool` command line: thin Typer commands over the pipeline's plain functions.

Exit codes: 0 success, 1 validation failed, 2 usage or input error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from si4tool import __version__
from si4tool.errors import UserError, ValidationFailed

app = typer.Typer(
    name="si4tool",
    help="Train a Keras CNN, quantize it to int8, and emit C for a microcontroller, validated bit for bit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=False)
error_console = Console(stderr=True)

_state = {"debug": False}

DataOption = Annotated[
    Optional[Path],
    typer.Option("--data", help="MNIST .npz in Keras layout; default: $SI4_MNIST, else the Keras downloader."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and the final line.")]


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"si4tool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug or bool(os.environ.get("SI4_DEBUG"))


# --- commands are registered below, one thin function each ---------------------


def main() -> None:
    """Console entry point: user errors become one sentence and exit code 2."""
    try:
        app(standalone_mode=False)
    except (UserError, ValidationFailed) as error:
        if _state["debug"]:
            raise
        error_console.print(f"[bold red]error:[/] {error}", highlight=False)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        error_console.print("[bold red]interrupted[/]: previous outputs are left as they were")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as error:  # click usage errors and the like
        import click

        if isinstance(error, click.exceptions.Exit):
            sys.exit(error.exit_code)
        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(2)
        if isinstance(error, click.exceptions.Abort):
            sys.exit(130)
        raise
