"""Labelled text tables on disk (CSV/TSV with a header row) as datasets: ``--dataset PATH``.

The text column is the first of ``sentence``, ``text``, ``content``, ``review``; the label column
is ``label`` holding integers 0..K-1 (label names are those integers as strings). GLUE's TSVs (e.g.
SST-2's ``dev.tsv``) load as they are: tab-separated, no quoting.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from robench.data.base import TEXT, Dataset, content_sha256
from robench.errors import RobenchError
from robench.fileio import read_text_file

TEXT_COLUMNS = ("sentence", "text", "content", "review")
SUFFIXES = (".tsv", ".csv")


def load_table(path: Path, columns: dict[str, str | None] | None = None) -> Dataset:
    """Load a CSV/TSV text-classification file (``columns``: explicit text/label column names)."""
    columns = columns or {}
    raw = read_text_file(path, "dataset file")
    if path.suffix == ".tsv":
        reader = csv.reader(io.StringIO(raw), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(raw))
    rows = list(reader)
    if len(rows) < 2:
        raise RobenchError(f"dataset file {path} is empty (it needs a header row and at least one example)")
    header = [h.strip().lower() for h in rows[0]]
    text_names = [columns["text"].lower()] if columns.get("text") else list(TEXT_COLUMNS)
    label_name = (columns.get("label") or "label").lower()
    text_col = next((header.index(c) for c in text_names if c in header), None)
    if text_col is None or label_name not in header:
        raise RobenchError(
            f"dataset file {path}: need a text column ({', '.join(text_names)}) and a {label_name!r} column; found {header}; "
            "name them with --text-column/--label-column"
        )
    label_col = header.index(label_name)
    texts, labels = [], []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            texts.append(row[text_col].strip())
            labels.append(int(row[label_col]))
        except (IndexError, ValueError):
            raise RobenchError(f"dataset file {path} line {line_no}: expected a text and an integer label") from None
    k = max(labels) + 1
    if min(labels) < 0:
        raise RobenchError(f"dataset file {path}: labels must be integers 0..K-1, found {min(labels)}")
    y = torch.tensor(labels, dtype=torch.long)
    return Dataset(
        name=str(path), task=TEXT, split=path.stem, labels=[str(i) for i in range(k)],
        inputs=texts, targets=y, ids=list(range(len(texts))), sha256=content_sha256(texts, y),
    )
