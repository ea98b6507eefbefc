"""Labelled text tables on disk (CSV/TSV with a header row) as datasets: ``--dataset PATH``.

The text column is the first of ``sentence``, ``text``, ``content``, ``review`` (or
``--text-column``); the label column is ``label`` (or ``--label-column``). Labels are integers
0..K-1 (names ``"0".."K-1"``) or strings (names: the sorted distinct values, or the order of a
``--labels FILE``; see :mod:`robench.data.labels`). GLUE's TSVs (e.g. SST-2's ``dev.tsv``) load as
they are: tab-separated, no quoting. Files are UTF-8, with or without a byte-order mark.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from robench.data.base import TEXT, Dataset, content_sha256
from robench.data.labels import infer_labels
from robench.errors import RobenchError
from robench.fileio import read_text_file

TEXT_COLUMNS = ("sentence", "text", "content", "review")
SUFFIXES = (".tsv", ".csv")


def load_table(path: Path, columns: dict[str, str | None] | None = None) -> Dataset:
    """Load a CSV/TSV text-classification file (``columns``: explicit text/label column names)."""
    columns = columns or {}
    # Excel and Notepad write a byte-order mark: without stripping it the first column is '\ufeffsentence'.
    raw = read_text_file(path, "dataset file").removeprefix("\ufeff")
    tsv = path.suffix == ".tsv"
    if tsv:
        reader = csv.reader(io.StringIO(raw), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(raw))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        body = [(reader.line_num, row) for row in reader if any(f.strip() for f in row)]  # blank lines skipped
    except csv.Error as e:  # e.g. a quote left open at the end of the file
        raise RobenchError(f"dataset file {path} line {reader.line_num}: malformed CSV ({e})") from None
    if not header or not body:
        raise RobenchError(f"dataset file {path} is empty (it needs a header row and at least one example)")
    text_names = [columns["text"].lower()] if columns.get("text") else list(TEXT_COLUMNS)
    label_name = (columns.get("label") or "label").lower()
    text_name = next((c for c in text_names if c in header), None)
    if text_name is None or label_name not in header:
        raise RobenchError(
            f"dataset file {path}: need a text column ({', '.join(text_names)}) and a {label_name!r} column; found {header}; "
            "name them with --text-column/--label-column"
        )
    for name in (text_name, label_name):
        where = [i + 1 for i, h in enumerate(header) if h == name]
        if len(where) > 1:
            raise RobenchError(f"dataset file {path}: the header names column {name!r} {len(where)} times (columns "
                               f"{', '.join(map(str, where))}); rename all but one, or pick another with "
                               f"--{'text' if name == text_name else 'label'}-column")
    text_col, label_col = header.index(text_name), header.index(label_name)
    texts, values = [], []
    for line_no, row in body:
        if len(row) != len(header):
            hint = "a tab inside a text?" if tsv else "quote a text that holds a comma: \"a, b\""
            raise RobenchError(f"dataset file {path} line {line_no}: {len(row)} fields but the header has {len(header)} "
                               f"({', '.join(header)}); {hint}")
        value = row[label_col].strip()
        if not value:
            raise RobenchError(f"dataset file {path} line {line_no}: the {label_name!r} field is empty; every example needs a label")
        texts.append(row[text_col].strip())
        values.append(value)
    y, names = infer_labels(values, f"dataset file {path}")
    return Dataset(
        name=str(path), task=TEXT, split=path.stem, labels=names,
        inputs=texts, targets=y, ids=list(range(len(texts))), sha256=content_sha256(texts, y),
    )
