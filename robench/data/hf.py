"""Hugging Face ``datasets``: ``hf:NAME[:CONFIG]`` from the hub (online), local JSON/JSONL/parquet
files and ``save_to_disk`` directories (always). Offline, a hub name fails at once with one line
instead of the library's ~23 s of retries.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import torch

from robench.data.base import IMAGE, TEXT, Dataset, content_sha256
from robench.data.files import TEXT_COLUMNS as TABLE_TEXT_COLUMNS
from robench.data.labels import infer_labels, label_strings
from robench.errors import RobenchError

TEXT_COLUMNS = (*TABLE_TEXT_COLUMNS, "sentence1")  # GLUE pair tasks name their first text so
LABEL_COLUMNS = ("label", "labels", "target", "class")
IMAGE_COLUMNS = ("image", "img", "pixel_values")
HUB_HOST = ("huggingface.co", 443)


def hub_reachable(timeout: float = 1.5) -> bool:
    """True when the hub answers a TCP connection within ``timeout`` (DNS included)."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection(HUB_HOST, timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"


def _to_dataset(table, name: str, split: str, columns: dict[str, str | None]) -> Dataset:
    cols = table.column_names
    label = columns.get("label") or next((c for c in LABEL_COLUMNS if c in cols), None)
    if label is None or label not in cols:
        raise RobenchError(f"dataset {name}: no label column among {cols}; pass --label-column")
    feature = table.features[label]
    names = list(getattr(feature, "names", []) or [])  # a ClassLabel column: integer ids with names
    if len(table) == 0:
        raise RobenchError(f"dataset {name} split {split!r} is empty")
    if names:
        y, labels = torch.tensor([int(v) for v in table[label]], dtype=torch.long), names
    else:  # plain integers (positions) or strings (names), as in a table
        y, labels = infer_labels(label_strings(table[label], f"dataset {name}"), f"dataset {name}")
    image = columns.get("image") or next((c for c in IMAGE_COLUMNS if c in cols), None)
    if image and image in cols:
        return _image_dataset(table, image, name, split, labels, y)
    text = columns.get("text") or next((c for c in TEXT_COLUMNS if c in cols), None)
    if text is None or text not in cols:
        raise RobenchError(f"dataset {name}: no text or image column among {cols}; pass --text-column or --image-column")
    texts = [str(t) for t in table[text]]
    return Dataset(name=name, task=TEXT, split=split, labels=labels, inputs=texts, targets=y,
                   ids=list(range(len(y))), sha256=content_sha256(texts, y))


def _image_dataset(table, column: str, name: str, split: str, labels: list[str], y: torch.Tensor) -> Dataset:
    """An ``Image`` column stays in the memory-mapped Arrow table: rows are decoded on demand
    (:class:`~robench.data.sources.ArrowImages`), never materialised."""
    import datasets

    from robench.data.imagenet import with_label_space
    from robench.data.sources import ArrowImages

    if not isinstance(table.features[column], datasets.Image):
        raise RobenchError(f"dataset {name}: column {column!r} is {type(table.features[column]).__name__}, not an Image "
                           "feature; cast it (dataset.cast_column(column, datasets.Image())) and save it again")
    table = table.cast_column(column, datasets.Image(decode=False))
    source = ArrowImages(table, column, tuple(range(len(y))), name=name, _fingerprint=str(table._fingerprint))
    return with_label_space(Dataset(name=name, task=IMAGE, split=split, labels=labels, inputs=source, targets=y,
                                    ids=list(range(len(y))), sha256=""))


def load_hf(name: str, split: str, columns: dict[str, str | None]) -> Dataset:
    """Load ``hf:NAME[:CONFIG]``, a local .json/.jsonl/.parquet file or a save_to_disk directory."""
    import datasets

    datasets.disable_progress_bars()
    path = Path(name)
    try:
        if name.startswith("hf:"):
            hub, _, config = name[3:].partition(":")
            if _offline() or not hub_reachable():
                raise RobenchError(
                    f"dataset {name}: the Hugging Face hub is not reachable (offline); download it elsewhere with "
                    "datasets' save_to_disk and pass that directory, or a local CSV/JSON/parquet file"
                )
            table = datasets.load_dataset(hub, config or None, split=split)
        elif path.is_dir():
            loaded = datasets.load_from_disk(str(path))
            table = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        else:
            kind = "parquet" if path.suffix == ".parquet" else "json"
            if not path.is_file():
                raise RobenchError(f"dataset file {path} not found")
            if kind == "json":  # pyarrow keeps invalid UTF-8 and fails only when a text is read
                from robench.fileio import check_utf8

                check_utf8(path, "dataset file")
            table = datasets.load_dataset(kind, data_files=str(path), split="train")
    except RobenchError:
        raise
    except KeyError:
        raise RobenchError(f"dataset {name} has no split {split!r}") from None
    except Exception as e:  # datasets raises many types for missing/corrupt data; report the first line
        raise RobenchError(f"dataset {name} could not be loaded ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    return _to_dataset(table, name, split, columns)
