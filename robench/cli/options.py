"""Typer options derived from the arguments dataclasses: an option is declared once, in its field.

``@args_options(EvaluateArgs)`` appends one Typer parameter per :func:`robench.argspec.option` field
of the class to a command's signature (Typer reads signatures), with the field's default (shown in
``--help``), flags and help, and hands the command the values as ``run``: keyword arguments of that
class, where an option the user left unset is left out so the dataclass default applies.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from typer.core import TyperCommand

from robench.argspec import REQUIRED, cli_fields

_P = inspect.Parameter

# The row exports every command that produces result rows takes (evaluate, attack, merge, leaderboard).
CsvExport = Annotated[Optional[Path], typer.Option("--csv", help="Export rows as CSV ('-' for stdout).")]
JsonExport = Annotated[Optional[Path], typer.Option("--json", help="Export rows as JSON ('-' for stdout: machine output).")]
MarkdownExport = Annotated[Optional[Path], typer.Option("--markdown", help="Export rows as a Markdown table.")]


def _cli_type(cls: type, f: dataclasses.Field) -> Any:
    """The type Typer parses for field ``f``: its ``cli_type``, else its annotation (evaluated in the
    class's module, as ``from __future__ import annotations`` leaves it a string)."""
    meta = f.metadata["cli"]
    t = meta["cli_type"]
    if t is None:
        t = eval(f.type, vars(sys.modules[cls.__module__])) if isinstance(f.type, str) else f.type
    args = typing.get_args(t)
    if (typing.get_origin(t) in (typing.Union, types.UnionType)) and type(None) in args:
        (t,) = [a for a in args if a is not type(None)]  # X | None: the value's type; the None default stays
    return Optional[t] if typing.get_origin(t) is list else t


def option_parameters(cls: type, exclude: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """One keyword-only parameter per CLI field of ``cls`` (Typer ``Argument`` or ``Option``)."""
    params = []
    for f in cli_fields(cls):
        if f.name in exclude:
            continue
        meta = f.metadata["cli"]
        default = f.default
        if default is REQUIRED or meta["required"]:
            default = ...
        elif isinstance(default, (tuple, list)) and not default:
            default = None  # a repeatable option or variadic argument given no value: Typer's None
        if meta["flags"] is None:
            info = typer.Argument(default, help=meta["help"], show_default=default not in (None, ...))
        else:
            info = typer.Option(default, *meta["flags"], help=meta["help"], show_default=True)
        params.append(_P(f.name, _P.KEYWORD_ONLY, default=info, annotation=_cli_type(cls, f)))
    return params


def cli_values(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Command-line values -> keyword arguments of ``cls``: unset ones dropped, ``parse`` applied."""
    fields = {f.name: f for f in cli_fields(cls)}
    out = {}
    for name, value in values.items():
        if value is None or (isinstance(value, list) and not value):
            continue  # not given: the dataclass's default, declared there only
        parse = fields[name].metadata["cli"]["parse"]
        out[name] = parse(value) if parse else value
    return out


def args_options(cls: type, exclude: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Give a command the options of ``cls`` (but ``exclude``); it receives them as ``run``."""

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn)
        # The command's own annotations resolved to objects (they are strings under `from __future__
        # import annotations`), keeping Annotated metadata such as the shared CsvExport option.
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [p.replace(kind=_P.KEYWORD_ONLY, annotation=hints.get(name, p.annotation))  # Typer passes keywords
               for name, p in sig.parameters.items() if name != "run"]
        extra = option_parameters(cls, exclude)
        names = [p.name for p in extra]
        # the class's own options (evaluate's --suite, attack's --threat) lead, the shared ones follow
        declared = set(cls.__dict__.get("__annotations__", {}))
        lead = [p for p in extra if p.name in declared]
        rest = [p for p in extra if p.name not in declared]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            run = {k: kwargs.pop(k) for k in names if k in kwargs}
            return fn(*args, **kwargs, run=cli_values(cls, run))

        wrapper.__signature__ = sig.replace(parameters=lead + own + rest)
        wrapper.__annotations__ = {**{k: v for k, v in hints.items() if k != "run"},
                                   **{p.name: p.annotation for p in extra}}
        return wrapper

    return decorate


class DeferredOptions(TyperCommand):
    """A command whose arguments dataclass lives in a module that imports torch (``TrainArgs``,
    ``DiagnoseArgs``): its options are built from the dataclass when the command runs or shows its
    help, not when ``robench --help`` lists the commands (which must not import torch)."""

    def load(self) -> None:
        """Build the real options and callback (once) from the command's dataclass."""
        build = getattr(getattr(self.callback, "__wrapped__", None), "build_command", None)
        if build is None:
            return
        one = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
        one.command()(build())
        real = typer.main.get_command(one)  # a Typer of one command gives that command
        self.params, self.callback = real.params, real.callback

    def make_context(self, info_name: Any, args: list, parent: Any = None, **extra: Any) -> Any:
        self.load()
        return super().make_context(info_name, args, parent=parent, **extra)


def deferred_args_options(module: str, name: str, exclude: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """:func:`args_options` of ``module.name``, imported only when the command runs (with
    :class:`DeferredOptions` as the command's class). ``robench --help`` sees a placeholder of the
    command's name and docstring."""

    def decorate(fn: Callable) -> Callable:
        def build() -> Callable:
            import importlib

            return args_options(getattr(importlib.import_module(module), name), exclude)(fn)

        def placeholder() -> None:  # replaced by build() before it could run
            raise AssertionError("deferred command ran unbuilt")

        placeholder.__name__, placeholder.__doc__ = fn.__name__, fn.__doc__
        placeholder.build_command = build
        return placeholder

    return decorate
