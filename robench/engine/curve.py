"""``robench.engine.curve``: accuracy along a sweep of one threat parameter, with 95% intervals and AUC.

``--sweep eps=0,1/255,2/255`` evaluates the threat once per value (any numeric parameter: eps,
severity, rate, steps, ...). The area under the curve is the trapezoid rule over the swept values,
divided by their range, so it reads as the mean accuracy over the range (1.0 = never broken).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from robench.errors import RobenchError
from robench.engine.args import CurveArgs, EvaluateArgs
from robench.engine.evaluate import evaluate
from robench.threats.base import CLEAN
from robench.results.schema import ResultRow
from robench.threats.registry import build_threat, threat_classes
from robench.threats.spec import parse_number, parse_spec


@dataclass
class CurveResult:
    key: str
    xs: list[float]
    specs: list[str]
    rows: list[ResultRow]  # one per (model, point), in model then x order
    auc: dict[str, float] = field(default_factory=dict)

    def points(self, model: str) -> list[ResultRow]:
        by_threat = {r.threat: r for r in self.rows if r.model == model}
        return [by_threat[s] for s in self.specs]


def trapezoid_auc(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Trapezoid area under ``ys`` over ``xs`` divided by the x range (one point: its value)."""
    if len(xs) == 1:
        return float(ys[0])
    import numpy as np

    return float(np.trapezoid(ys, xs)) / (xs[-1] - xs[0])


def sweep_specs(threat: str, sweep: str) -> tuple[str, list[float], list[str]]:
    """Parse ``key=v1,v2,...`` and build one canonical spec per value (sorted by value)."""
    key, eq, values = sweep.partition("=")
    key = key.strip().lower().replace("-", "_")
    if not eq or not values.strip():
        raise RobenchError(f"--sweep {sweep!r}: expected key=v1,v2,... (e.g. eps=0,1/255,2/255)")
    parsed = parse_spec(threat)
    cls = threat_classes().get(parsed.name)
    if cls is None:
        build_threat(threat)  # raises the unknown-threat error with the valid names
    numeric = [p.name for p in cls.params if p.kind in ("float", "int")]
    if key not in numeric:
        raise RobenchError(f"--sweep: threat {parsed.name!r} has no numeric parameter {key!r}; numeric: {', '.join(numeric) or '(none)'}")
    if key in parsed.raw_params:
        raise RobenchError(f"--sweep sets {key!r}; remove it from --threat {threat!r}")
    raw = [v.strip() for v in values.split(",") if v.strip()]
    pairs = sorted({parse_number(v, f"--sweep {key}"): v for v in raw}.items())
    if len(pairs) < 2:
        raise RobenchError("--sweep needs at least two distinct values")
    specs = []
    for _, v in pairs:
        params = {**parsed.raw_params, key: v}
        specs.append(build_threat(parsed.name + ":" + ",".join(f"{k}={val}" for k, val in params.items())).spec)
    return key, [x for x, _ in pairs], specs


def classifiers_only(models: list) -> None:
    """A curve is accuracy along a sweep: a language model (perplexity rows) is refused before any work."""
    from robench.data.base import LM

    lm = next((m for m in models if m.task == LM), None)
    if lm is not None:
        raise RobenchError(f"robench curve plots accuracy; {lm.name} is a language model: compare its perplexity at each "
                           f"value with `robench evaluate {lm.name} --threat ... --threat ...`")


def curve(args: CurveArgs, on_row: Callable[[ResultRow], None] | None = None,
          on_progress: Callable[[str, int, int], None] | None = None,
          on_note: Callable[[str], None] | None = None) -> CurveResult:
    """Evaluate every model at every swept value; returns the points and each model's AUC."""
    key, xs, specs = sweep_specs(args.threat, args.sweep)
    if len(set(specs)) != len(specs):
        raise RobenchError("--sweep values give identical threats after validation; use distinct values")
    eval_args = EvaluateArgs(**{**{k: getattr(args, k) for k in EvaluateArgs.__dataclass_fields__}, "threats": specs})
    rows = [r for r in evaluate(eval_args, on_row=on_row, on_models=classifiers_only, on_progress=on_progress,
                                on_note=on_note) if r.threat != CLEAN]
    result = CurveResult(key=key, xs=xs, specs=specs, rows=rows)
    for model in dict.fromkeys(r.model for r in rows):
        result.auc[model] = round(trapezoid_auc(xs, [r.attacked_acc for r in result.points(model)]), 6)
    return result
