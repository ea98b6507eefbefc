"""The one result schema (docs/result-schema.md) and its CSV / JSON / Markdown exports.

One :class:`ResultRow` per (model, threat), for every modality. Accuracies are fractions in [0, 1]
rounded to 6 decimals, so every export of a run carries the same numbers.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Optional, Sequence

from robench.errors import RobenchError
from robench.fileio import atomic_write_text

FLOAT_DECIMALS = 6
FRACTION_COLUMNS = ("clean_top5", "attacked_top5")

# The paired tests behind ``paired_p``, named in ``paired_test``.
MCNEMAR_EXACT = "mcnemar-exact"  # classifiers: exact McNemar on the examples robust under one model only
WINDOW_Z = "window-clustered-z"  # language models: z-test of the per-window NLL differences (robench.lm.perplexity)
PAIRED_TEST_OF_METRIC = {"accuracy": MCNEMAR_EXACT, "perplexity": WINDOW_Z}  # what files before paired_test used
OLD_NAMES = {"mcnemar_p": "paired_p"}  # columns renamed since: files that have them still read


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
    # Filled only with --baseline: the paired difference to the baseline on the same examples (accuracy
    # or perplexity), and the p-value of the paired test that paired_test names (MCNEMAR_EXACT, WINDOW_Z).
    baseline: str = ""
    delta_vs_baseline: Optional[float] = None
    paired_p: Optional[float] = None
    paired_test: str = ""  # empty without a p-value; files written before this column: from their metric
    # corruption:name=all rows with --baseline: mean corruption error relative to the baseline
    mce: Optional[float] = None
    # The sanity battery (robench.checks.sanity): flag codes separated by ";" and one line per flag.
    flags: str = ""
    flag_notes: str = ""
    # "accuracy" (classifiers) or "perplexity" (language models: clean_acc / attacked_acc then hold the
    # clean / attacked perplexity, lower is better; robench.lm.perplexity). Files without the column read as accuracy.
    metric: str = "accuracy"
    # Top-5 accuracy clean / under the threat (classifiers with 6 classes or more; empty otherwise).
    # Robust top-5: correct (top-1) when clean, hence attacked, and the true label still among the
    # 5 best classes of the kept adversarial input (an example wrong when clean is not robust).
    clean_top5: Optional[float] = None
    attacked_top5: Optional[float] = None
    # What the images went through (resize, crop, interpolation; robench.data.preprocess), and the
    # identity of the evaluated examples (robench.data.base.Dataset.identity). Empty in older files.
    preprocessing: str = ""
    dataset_sha256: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in FRACTION_COLUMNS:  # optional accuracies: 6 decimals like the others
                setattr(self, f.name, None if v in (None, "") else round(float(v), FLOAT_DECIMALS))
            elif f.type == "Optional[float]":
                # p-values keep 6 significant digits: rounding to decimals would print 0
                setattr(self, f.name, None if v in (None, "") else float(f"{float(v):.6g}"))
            elif f.type == "float":
                setattr(self, f.name, round(float(v), FLOAT_DECIMALS))
            elif f.type == "int":
                setattr(self, f.name, int(v))
            else:
                setattr(self, f.name, str(v))


COLUMNS: list[str] = [f.name for f in fields(ResultRow)]
BASELINE_COLUMNS = ["baseline", "delta_vs_baseline", "paired_p", "paired_test", "mce"]
FLAG_COLUMNS = ["flags", "flag_notes"]
METRIC_COLUMNS = ["metric"]
DATA_COLUMNS = ["clean_top5", "attacked_top5", "preprocessing", "dataset_sha256"]
REQUIRED_COLUMNS = [c for c in COLUMNS if c not in BASELINE_COLUMNS + FLAG_COLUMNS + METRIC_COLUMNS + DATA_COLUMNS]


def dataclass_csv(items: Sequence, columns: Sequence[str]) -> str:
    """CSV of dataclass instances, one column per field in ``columns`` (also robench.studies.aggregate's summaries)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for item in items:
        w.writerow(asdict(item))
    return buf.getvalue()


def to_csv(rows: Sequence[ResultRow]) -> str:
    return dataclass_csv(rows, COLUMNS)


def to_json(rows: Sequence[ResultRow]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=1) + "\n"


def to_markdown(rows: Sequence[ResultRow]) -> str:
    """A GitHub table with every schema column (same numbers as CSV/JSON) and its direction."""
    lines = ["Accuracies are fractions in [0, 1]; higher is better. attacked_ci_* is a 95% Wilson interval."]
    if any(r.metric == "perplexity" for r in rows):
        lines.append("Rows with metric=perplexity hold perplexities in clean_acc/attacked_acc (lower is better), "
                     "attacked_ci_* a 95% interval from the window-clustered standard error of the mean NLL.")
    lines += [
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in asdict(r).values()) + " |")
    return "\n".join(lines) + "\n"


EXPORTERS = {"csv": to_csv, "json": to_json, "markdown": to_markdown}


def export(rows: Sequence[ResultRow], path: Path | str, fmt: str) -> None:
    """Write ``rows`` to ``path`` in ``fmt`` (csv, json, markdown) atomically."""
    atomic_write_text(path, EXPORTERS[fmt](rows))


def _coerce(d: dict, source: str) -> ResultRow:
    missing = [c for c in REQUIRED_COLUMNS if c not in d]
    if missing:
        raise RobenchError(f"{source} is not a robench result file: missing columns {missing[:5]}")
    d = {OLD_NAMES.get(c, c): v for c, v in d.items()}
    if "paired_test" not in d and d.get("paired_p") not in (None, ""):
        # written before paired_test: the p-value came from the one test robench ran for the metric
        d["paired_test"] = PAIRED_TEST_OF_METRIC.get(d.get("metric") or "accuracy", "")
    try:
        return ResultRow(**{c: d[c] for c in COLUMNS if c in d})
    except (TypeError, ValueError) as e:
        raise RobenchError(f"{source} has a malformed value: {e}") from None


def _json_items(path: Path, text: str) -> list:
    try:
        if path.suffix == ".jsonl":
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            items = json.loads(text)
    except json.JSONDecodeError as e:
        raise RobenchError(f"result file {path} is not valid JSON ({e.msg} at line {e.lineno}); {READS}") from None
    if not isinstance(items, list) or not all(isinstance(d, dict) for d in items):
        raise RobenchError(f"result file {path} must hold a list of row objects")
    return items


READS = "robench reads result rows from the .csv, .json or .jsonl files that --csv/--json write"


def read_rows(path: Path | str) -> list[ResultRow]:
    """Read rows back from a CSV, JSON (list) or JSONL export."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RobenchError(f"result file {path} not found") from None
    except IsADirectoryError:
        example = path / "rows.json" if (path / "rows.json").is_file() else f"{path}/*.csv"  # an --out folder keeps its rows there
        raise RobenchError(f"{path} is a directory; {READS}: give those files (e.g. {example})") from None
    except UnicodeDecodeError:
        raise RobenchError(f"{path} is not UTF-8 text (a plot or another binary file, or a table in another encoding: "
                           f"re-save it as UTF-8); {READS}") from None
    if path.suffix == ".csv":
        items: Iterable = list(csv.DictReader(io.StringIO(text)))
    else:
        items = _json_items(path, text)
    rows = [_coerce(d, str(path)) for d in items]
    if not rows:
        raise RobenchError(f"result file {path} holds no rows")
    return rows
