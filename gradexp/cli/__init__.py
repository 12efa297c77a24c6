"""The `gradexp` command: parse, call the library, print. Library errors become one line and an exit code here.

Each subcommand lives in its own module below and is attached in `_attach_commands`; adding one is a module plus one line.
"""

from __future__ import annotations

import functools
import signal
import sys
from typing import Any, Callable

import click

from gradexp import __version__
from gradexp.errors import GradexpError


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a library error into `error: <one line>` on stderr and its exit code; never a traceback.

    A Ctrl-C that training does not catch itself (while data loads, or a second one while a stopped
    run saves) ends the command with the shell's code for SIGINT, 130.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except GradexpError as failure:
            # Messages quote what the user typed, which may hold line breaks; the error stays one line.
            message = str(failure).replace("\r", "\\r").replace("\n", "\\n")
            click.echo(f"error: {message}", err=True)
            sys.exit(failure.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(128 + signal.SIGINT)

    return wrapper


overrides_option = click.option(
    "--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
    help="Override one config value (repeatable), e.g. --set optimizer.lr=0.1 --set clip.mode=norm; "
         "--set clip.threshold=none runs without clipping.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gradexp")
def main() -> None:
    """gradexp: watch gradients explode and vanish, clip them, and compare the fixes.

    Example: gradexp run configs/srn_explode.yaml
    """


def _attach_commands() -> None:
    from gradexp.cli import compare, data, export, gradcheck, plot, run, sweep, validate

    for module in (run, validate, plot, compare, gradcheck, sweep, data, export):
        main.add_command(module.command)


_attach_commands()
