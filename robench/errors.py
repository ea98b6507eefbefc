"""User-facing errors.

A :class:`RobenchError` is a problem with the user's input (a bad spec, a missing file, a corrupt
checkpoint, ...). The CLI prints its message as one line on stderr and exits with code 2; anything
else is a bug and exits with code 1.
"""

from __future__ import annotations

import sys
from typing import NoReturn


class RobenchError(Exception):
    """Bad usage or bad input: the message says what is wrong and how to fix it."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        # One line only: the CLI contract is "one clear line on stderr".
        super().__init__(" ".join(str(message).split()))


def exit_on_bad_input(error: RobenchError) -> NoReturn:
    """For a ``python -m`` entry point outside the Typer CLI (the study scripts): the CLI's contract,
    the message as one line on stderr and exit code 2, no traceback."""
    sys.stderr.write(f"robench: error: {error}\n")
    sys.stderr.flush()
    raise SystemExit(error.exit_code) from None


MAX_SEED = 2**63 - 1  # torch and numpy accept every seed in [0, 2**63 - 1]; robench derives its seeds below 2**63 (robench.seeds)


def check_seed(seed: int, flag: str = "--seed") -> None:
    """A seed must be a whole number in [0, 2**63 - 1] (negative or larger seeds fail deep inside numpy/torch)."""
    if not 0 <= seed <= MAX_SEED:
        raise RobenchError(f"{flag} must be in [0, {MAX_SEED}] (a non-negative whole number), got {seed}")
