"""An argument declared once: a dataclass field that also carries its command-line flag and help.

The arguments dataclasses (:mod:`robench.engine.args`, ``TrainArgs``, ``DiagnoseArgs``) declare each
option with :func:`option`; :mod:`robench.cli.options` builds the Typer options from these fields, so
the default and the help text of an option live only in its field. Torch-free (``--help`` imports it).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

REQUIRED = dataclasses.MISSING  # the default of an option that must be given


def option(default: Any, flags: str | tuple[str, ...] | None, *, help: str, cli_type: Any = None,
           parse: Callable[[Any], Any] | None = None, cli_required: bool = False) -> Any:
    """A dataclass field that is also a CLI option, or with ``flags=None`` the positional argument.

    ``flags`` are the option's names (``"--seed"`` or ``("-n", "--num-examples")``); a ``REQUIRED``
    default makes it required. ``cli_type`` is the type the command line parses where the field's
    differs (``list[str]`` of ``key=value`` for a dict), and ``parse`` turns that value into the field's.
    ``cli_required``: the command line must give it though Python need not (the field then checks it).
    """
    meta = {"help": help, "flags": (flags,) if isinstance(flags, str) else flags, "cli_type": cli_type, "parse": parse,
            "required": cli_required}
    return dataclasses.field(default=default, metadata={"cli": meta})


def cli_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are CLI options: the class's own first, then those it inherits
    (a command's own options lead its ``--help``); fields without :func:`option` are Python-only."""
    own = set(cls.__dict__.get("__annotations__", {}))
    fields = [f for f in dataclasses.fields(cls) if "cli" in f.metadata]
    return [f for f in fields if f.name in own] + [f for f in fields if f.name not in own]
