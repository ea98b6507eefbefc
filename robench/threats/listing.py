"""What ``robench threats`` shows: every threat as a block of wrapped text, the suites, and JSON.

Plain text wrapped at the given width rather than a table: at 80 columns a table must cut long
cells (the 15 corruption names, textattack's recipe list), a block only wraps them. Lines break
at spaces only, never inside a name (``elastic_transform``, ``bad-characters``), so every choice
can be found with ``grep``. Torch-free: listing threats never imports what computes them.
"""

from __future__ import annotations

import textwrap
from typing import Any

from robench.threats.registry import Param, build_threat, threat_classes
from robench.threats.spec import format_number
from robench.threats.suite import list_suites, load_suite

INDENT = "  "


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    return textwrap.wrap(text, width=max(width, len(first) + 20), initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


def param_default(p: Param) -> str:
    """The default as shown: the value, or the rule for a derived default (``eps/4``)."""
    return p.rule if p.follows else format_number(p.default)


def param_text(p: Param) -> str:
    """Everything about one parameter, in words: bounds or choices, unit, help."""
    parts = []
    if p.kind == "choice":
        parts.append("one of: " + ", ".join(p.choices))
    elif p.kind == "bool":
        parts.append("1 or 0")
    else:
        bounds = p.describe()
        parts.append(f"{'whole number ' if p.kind == 'int' else ''}in {bounds}" if bounds else p.kind)
    if p.unit:
        parts.append(p.unit)
    text = "; ".join(parts)
    if p.help:
        text += f" - {p.help}"
    if p.follows:
        text += f"; {format_number(p.default)} at the default {p.follows}"
    return text


def norm_param(cls: type):
    """The ``norm`` parameter of a threat whose perturbation unit it sets (apgd, square, autoattack), or None."""
    return next((p for p in cls.params if p.name == "norm"), None)


def threat_block(name: str, cls: type, width: int) -> list[str]:
    """One threat: a header line, its description, one entry per parameter; wrapped at ``width``."""
    norm = norm_param(cls)
    unit = f"the norm ({' or '.join(norm.choices)})" if norm else cls.perturbation_unit
    lines = [f"{name}  ({cls.modality} threat; perturbation unit: {unit})"]
    lines += _wrap(cls.summary, width, INDENT, INDENT)
    for p in cls.params:
        head = f"{INDENT}{p.name}={param_default(p)}  "
        lines += _wrap(param_text(p), width, head, INDENT * 3)
    extra = getattr(cls, "listing_notes", None)
    for note in extra() if extra else []:
        lines += _wrap(note, width, INDENT, INDENT * 3)
    return lines


def suite_entries() -> list[dict[str, Any]]:
    """Each suite in ``attacks/``: name, description and its threats per modality (as written)."""
    out = []
    for name in list_suites():
        suite = load_suite(name)
        out.append({"name": name, "description": suite.description,
                    **{m: [t.spec for t in suite.for_modality(m)] for m in ("image", "text")}})
    return out


def threats_text(width: int) -> str:
    """The whole listing: every threat, then the spec syntax and the suites, wrapped at ``width``."""
    lines: list[str] = []
    for name, cls in threat_classes().items():
        lines += threat_block(name, cls, width) + [""]
    lines += _wrap("spec: name or name:key=value,... (fractions like 8/255 allowed); results store the canonical "
                   "spec with every parameter; a parameter shown as eps/4 follows eps unless given", width, "", "")
    lines += ["", "suites (--suite NAME or a .toml path):"]
    for s in suite_entries():
        lines += _wrap(s["description"], width, f"{INDENT}{s['name']}: ", INDENT * 2)
        for m in ("image", "text"):
            for spec in s[m]:  # the display form here (fits 80 columns); --json has the canonical specs
                lines += _wrap(build_threat(spec).short, width, f"{INDENT * 2}{m}: ", INDENT * 3)
    return "\n".join(lines) + "\n"


def unit_fields(cls: type) -> dict[str, Any]:
    """The perturbation unit of a threat class: fixed, or its ``norm`` parameter's (apgd, square,
    autoattack: ``unit`` is the default norm's, ``unit_follows`` names the parameter)."""
    norm = norm_param(cls)
    return {"unit": norm.default, "unit_follows": "norm"} if norm else {"unit": cls.perturbation_unit, "unit_follows": None}


def threats_json() -> dict[str, Any]:
    """Machine form: every threat with its parameters, and every suite with its threats."""
    return {
        "threats": [
            {"name": n, "modality": c.modality, "access": c.access, **unit_fields(c), "summary": c.summary,
             "params": [{"name": p.name, "type": p.kind, "default": p.default, "derived_default": p.rule or None,
                         "unit": p.unit, "bounds": p.describe(), "choices": list(p.choices), "help": p.help}
                        for p in c.params]}
            for n, c in threat_classes().items()
        ],
        "suites": suite_entries(),
    }
