"""The Typer application and the error contract of every command.

Bad input (:class:`~robench.errors.RobenchError`) -> one line on stderr, exit 2, no traceback.
Anything else is a bug -> one line plus a hint, exit 1 (``ROBENCH_DEBUG=1`` shows the traceback).
Commands import heavy modules (torch, timm, textattack) inside their bodies: ``--help`` stays fast.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

app = typer.Typer(
    name="robench",
    help="Robustness benchmarking for Transformer classifiers (SA, BSA, GRC, BSA-GRC).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Tables go to stdout; progress and notes to stderr so that `--json -` output stays machine-readable.
# Piped or captured output gets a wide virtual terminal so tables are not squeezed to 80 columns
# (a table only takes the width it needs), unless COLUMNS says how wide it is (Rich reads COLUMNS).
_columns = os.environ.get("COLUMNS", "")
out_console = Console() if sys.stdout.isatty() or (_columns.isdigit() and int(_columns) > 0) else Console(width=200)
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from robench import __version__

        out_console.print(f"robench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print robench's version and exit."),
) -> None:
    """Robustness benchmarking for Transformer classifiers (SA, BSA, GRC, BSA-GRC)."""


def warn(message: str) -> None:
    """Warnings go to stderr as one line each (never into machine output on stdout)."""
    sys.stderr.write(f"robench: warning: {' '.join(message.split())}\n")


def fail(message: str, code: int = 2) -> "typer.Exit":
    sys.stderr.write(f"robench: error: {' '.join(message.split())}\n")
    sys.stderr.flush()
    return typer.Exit(code)


def main() -> None:
    """Console entry point."""
    # OpenMP's idle threads sleep instead of spinning (before torch is imported, when the policy is
    # read), unless the user chose a policy. benchmarks/threads.py, 2 cores: torch's default (one
    # thread per core, spinning) ran 2.2-2.7x slower beside one busy process; passive kept the idle
    # speed and stayed within 1.35x under that load (one thread: up to 1.29x slower even idle).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from robench.errors import RobenchError

    import robench.cli  # noqa: F401  (registers the commands)

    try:
        from typer._click import exceptions as click_exc  # typer >= 0.29 vendors click: its exceptions are these
    except ImportError:
        from click import exceptions as click_exc

    try:
        code = app(standalone_mode=False)  # exceptions come here: one line each, no usage block
    except RobenchError as e:
        raise SystemExit(fail(str(e), e.exit_code).exit_code) from None
    except click_exc.NoArgsIsHelpError as e:
        sys.stdout.write((e.ctx.get_help() if e.ctx else "") + "\n")
        raise SystemExit(2) from None
    except click_exc.UsageError as e:  # unknown command/option, a value of the wrong type
        where = e.ctx.command_path if e.ctx else "robench"
        raise SystemExit(fail(f"{e.format_message()} (see '{where} --help')").exit_code) from None
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    except Exception as e:  # a bug: keep the one-line contract, offer the traceback on demand
        if os.environ.get("ROBENCH_DEBUG"):
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        sys.stderr.write(
            f"robench: internal error: {type(e).__name__}: {first} (re-run with ROBENCH_DEBUG=1 for the traceback)\n"
        )
        raise SystemExit(1) from None
    if code == 130:  # Ctrl-C: typer turns KeyboardInterrupt into exit code 130
        sys.stderr.write("robench: interrupted; exports were not written (a run with --out DIR resumes when rerun with the same command)\n")
    raise SystemExit(code if isinstance(code, int) else 0)
