"""Threat registry: one entry per threat name, with typed parameters, defaults and units.

``@register_threat`` on a :class:`~robench.threats.base.Threat` subclass makes it available to
specs, suites, ``robench threats`` and the runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robench.errors import RobenchError
from robench.threats.spec import ParsedSpec, format_number, parse_number, parse_spec


@dataclass(frozen=True)
class Param:
    """One threat parameter: type (``float``, ``int``, ``bool`` or ``choice``), default, bounds, unit.

    ``follows``/``divisor``: a default derived from another parameter (PGD's step size ``alpha``
    defaults to ``eps/4``): when the parameter is not given it is ``value of follows / divisor``,
    whether ``follows`` was given or left at its own default; ``default`` is then the value at
    that parameter's default (what ``robench threats`` shows beside the rule).
    """

    name: str
    kind: str
    default: Any
    help: str = ""
    unit: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    follows: str | None = None
    divisor: int = 1

    @property
    def rule(self) -> str:
        """The derivation as text (``eps/4``), empty for a plain default."""
        return f"{self.follows}/{self.divisor}" if self.follows else ""

    def derive(self, values: dict[str, Any]) -> Any:
        """This parameter's default given the other parameters' ``values``."""
        return values[self.follows] / self.divisor if self.follows else self.default

    def parse(self, value: str, threat: str) -> Any:
        what = f"threat {threat!r} parameter {self.name!r}"
        if self.kind == "choice":
            v = value.strip().lower()
            if v not in self.choices:
                raise RobenchError(f"{what}: {value!r} is not one of {', '.join(self.choices)}")
            return v
        if self.kind == "bool":
            v = value.strip().lower()
            if v in ("1", "true", "yes", "on"):
                return True
            if v in ("0", "false", "no", "off"):
                return False
            raise RobenchError(f"{what}: {value!r} is not a boolean (use 1/0 or true/false)")
        x = parse_number(value, what)
        if self.kind == "int":
            if not float(x).is_integer():
                raise RobenchError(f"{what}: {value!r} must be a whole number")
            x = int(x)
        self.check(x, what)
        return x

    def check(self, x: float, what: str) -> None:
        if self.low is not None and x < self.low:
            raise RobenchError(f"{what}: {format_number(x)} is below the minimum {format_number(self.low)}")
        if self.high is not None and x > self.high:
            raise RobenchError(f"{what}: {format_number(x)} is above the maximum {format_number(self.high)}")

    def describe(self) -> str:
        bounds = ""
        if self.kind == "choice":
            bounds = "{" + "|".join(self.choices) + "}"
        elif self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else format_number(self.low)
            hi = "inf" if self.high is None else format_number(self.high)
            bounds = f"[{lo}, {hi}]"
        return bounds


_THREATS: dict[str, type] = {}


def register_threat(cls: type) -> type:
    """Class decorator: register a Threat subclass under its ``name``."""
    if cls.name in _THREATS:
        raise ValueError(f"threat {cls.name!r} registered twice")
    _THREATS[cls.name] = cls
    return cls


def threat_classes() -> dict[str, type]:
    return dict(sorted(_THREATS.items()))


def build_threat(spec: str):
    """Parse and validate a spec into a ready Threat instance (exit 2 on anything unknown)."""
    parsed = parse_spec(spec)
    classes = threat_classes()
    if parsed.name not in classes:
        raise RobenchError(f"unknown threat {parsed.name!r}; valid threats: {', '.join(classes)}")
    cls = classes[parsed.name]
    raw = dict(parsed.raw_params)
    if "" in raw:
        positional = getattr(cls, "positional", None)
        if positional is None:
            raise RobenchError(f"bad threat spec {spec!r}: {raw['']!r} is not key=value")
        if positional in raw:
            raise RobenchError(f"bad threat spec {spec!r}: {positional!r} given twice")
        raw[positional] = raw.pop("")
    parsed = ParsedSpec(parsed.name, raw)
    known = {p.name: p for p in cls.params}
    unknown = sorted(set(parsed.raw_params) - set(known))
    if unknown:
        raise RobenchError(
            f"threat {parsed.name!r} has no parameter {unknown[0]!r}; valid: {', '.join(known) or '(none)'}"
        )
    # only the given values: the threat fills in the defaults, derived ones (alpha = eps/4) from the given values
    return cls(**{k: known[k].parse(v, parsed.name) for k, v in parsed.raw_params.items()})


