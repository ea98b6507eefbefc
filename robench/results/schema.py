"""The one result schema (DESIGN.md section 4) and its CSV / JSON / Markdown exports.

One :class:`ResultRow` per (model, threat), for every modality. Accuracies are fractions in [0, 1]
rounded to 6 decimals, so every export of a run carries the same numbers.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Sequence

from robench.errors import RobenchError
from robench.fileio import atomic_write_text

FLOAT_DECIMALS = 6


@dataclass
class ResultRow:
    model: str
    checkpoint_sha256: str
    task: str
    dataset: str
    split: str
    n: int
    threat: str
    clean_acc: float
    attacked_acc: float
    attacked_ci_low: float
    attacked_ci_high: float
    attack_success_rate: float
    mean_perturbation: float
    perturbation_unit: str
    mean_queries: float
    seconds: float
    seed: int
    device: str
    robench_version: str

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type == "float":
                setattr(self, f.name, round(float(v), FLOAT_DECIMALS))
            elif f.type == "int":
                setattr(self, f.name, int(v))
            else:
                setattr(self, f.name, str(v))


COLUMNS: list[str] = [f.name for f in fields(ResultRow)]


def to_csv(rows: Sequence[ResultRow]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(asdict(r))
    return buf.getvalue()


def to_json(rows: Sequence[ResultRow]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=1) + "\n"


def to_markdown(rows: Sequence[ResultRow]) -> str:
    """A GitHub table with every schema column (same numbers as CSV/JSON) and its direction."""
    lines = [
        "Accuracies are fractions in [0, 1]; higher is better. attacked_ci_* is a 95% Wilson interval.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(str(v) for v in asdict(r).values()) + " |")
    return "\n".join(lines) + "\n"


EXPORTERS = {"csv": to_csv, "json": to_json, "markdown": to_markdown}


def export(rows: Sequence[ResultRow], path: Path | str, fmt: str) -> None:
    """Write ``rows`` to ``path`` in ``fmt`` (csv, json, markdown) atomically."""
    atomic_write_text(path, EXPORTERS[fmt](rows))


def _coerce(d: dict, source: str) -> ResultRow:
    missing = [c for c in COLUMNS if c not in d]
    if missing:
        raise RobenchError(f"{source} is not a robench result file: missing columns {missing[:5]}")
    try:
        return ResultRow(**{c: d[c] for c in COLUMNS})
    except (TypeError, ValueError) as e:
        raise RobenchError(f"{source} has a malformed value: {e}") from None


def read_rows(path: Path | str) -> list[ResultRow]:
    """Read rows back from a CSV, JSON (list) or JSONL export."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RobenchError(f"result file {path} not found") from None
    if path.suffix == ".csv":
        return [_coerce(d, str(path)) for d in csv.DictReader(io.StringIO(text))]
    try:
        if path.suffix == ".jsonl":
            items: Iterable = [json.loads(l) for l in text.splitlines() if l.strip()]
        else:
            items = json.loads(text)
    except json.JSONDecodeError as e:
        raise RobenchError(f"result file {path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(items, list):
        raise RobenchError(f"result file {path} must hold a list of rows")
    return [_coerce(d, str(path)) for d in items]
