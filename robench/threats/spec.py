"""Threat specs: ``name`` or ``name:key=value,key=value`` (docs/threat-spec.md).

Values may be fractions (``eps=8/255``). The canonical form (sorted keys, every parameter spelled
out, normalised numbers) is what results store, so two spellings of one threat compare equal.
Parsing never evaluates anything: numbers are parsed with ``fractions.Fraction``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from robench.errors import RobenchError

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
_FRACTION_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?(/[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)?$")


@dataclass(frozen=True)
class ParsedSpec:
    name: str
    raw_params: dict[str, str]


def parse_spec(text: str) -> ParsedSpec:
    """Split a spec into its name and raw ``key=value`` strings (no validation of keys)."""
    text = text.strip()
    name, _, rest = text.partition(":")
    name = name.strip().lower()
    if not _NAME_RE.match(name):
        raise RobenchError(f"bad threat spec {text!r}: expected name or name:key=value,... (e.g. pgd:eps=8/255,steps=20)")
    params: dict[str, str] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            if not eq and key.strip() and "" not in params:
                # a bare value (textattack:pwws) is the threat's positional parameter, if it has one
                key, eq, value = "", "=", key
            key, value = key.strip().lower().replace("-", "_"), value.strip()
            if not eq or not value:
                raise RobenchError(f"bad threat spec {text!r}: {item.strip()!r} is not key=value")
            if key in params:
                raise RobenchError(f"bad threat spec {text!r}: {key!r} given twice")
            params[key] = value
    return ParsedSpec(name, params)


def parse_number(value: str, what: str) -> float:
    """A float from ``0.1``, ``8/255`` or ``1e-3``; anything else is a one-line error."""
    v = value.strip()
    if not _FRACTION_RE.match(v):
        raise RobenchError(f"{what}: {value!r} is not a number (use e.g. 0.03, 8/255 or 1e-3)")
    num, _, den = v.partition("/")
    try:
        x = Fraction(num) / Fraction(den) if den else Fraction(num)
    except ZeroDivisionError:
        raise RobenchError(f"{what}: {value!r} divides by zero") from None
    try:
        out = float(x)
    except OverflowError:  # 1e309, 1e999/2: exact as a fraction, too large for a float
        out = math.inf
    if not math.isfinite(out):
        raise RobenchError(f"{what}: {value!r} is too large in magnitude for a finite number; use a value within the parameter's bounds "
                           "(see `robench threats`)")
    return out


def format_number(x: Any) -> str:
    """Canonical number text: ``3``, ``0.1``, ``8/255`` (small-denominator fractions), else 10 digits."""
    if isinstance(x, bool):
        return "1" if x else "0"
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e15):
        return str(int(x))
    if isinstance(x, float):
        short = format(x, ".6g")
        if float(short) == x:
            return short
        frac = Fraction(x).limit_denominator(1000)
        if abs(float(frac) - x) <= 1e-12 * max(1.0, abs(x)):
            return f"{frac.numerator}/{frac.denominator}"  # 8/255 stays 8/255
        return format(x, ".10g")
    return str(x)
