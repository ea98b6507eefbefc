"""Label sets of classification data: label names from integer or string labels, a ``--labels`` file
fixing their order, and aligning a dataset's targets with a model's label names.

Integer labels keep their meaning as positions (names ``"0".."K-1"``, K = max + 1, as GLUE and
torchvision use them); any other labels are names, and the label set is their sorted distinct
values unless a ``--labels FILE`` (one name per line) gives the order, as a Hugging Face
``ClassLabel(names=...)`` does.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch

from robench.data.base import Dataset
from robench.errors import RobenchError

_INT = re.compile(r"[+-]?\d+")
_SHOWN = 8  # names listed in one error line


def positional(names: Sequence[str]) -> bool:
    """True for the names of integer labels, ``"0".."K-1"``: they carry no names to compare."""
    return list(names) == [str(i) for i in range(len(names))]


def _show(names: Sequence[str]) -> str:
    names = list(names)
    more = f", ... ({len(names)} in all)" if len(names) > _SHOWN else ""
    return ", ".join(repr(n) for n in names[:_SHOWN]) + more


def infer_labels(values: Sequence[str], source: str) -> tuple[torch.Tensor, list[str]]:
    """Targets and label names of raw label values (strings, already stripped).

    All integers -> positions, names ``"0".."max"`` (a negative one is refused); otherwise the
    sorted distinct strings are the names.
    """
    if not values:
        raise RobenchError(f"{source} has no examples")
    if all(_INT.fullmatch(v) for v in values):
        ints = [int(v) for v in values]
        if min(ints) < 0:
            raise RobenchError(f"{source}: integer labels must be 0..K-1, found {min(ints)}; "
                               "renumber them or use label names (strings)")
        return torch.tensor(ints, dtype=torch.long), [str(i) for i in range(max(ints) + 1)]
    names = sorted(set(values))
    index = {n: i for i, n in enumerate(names)}
    return torch.tensor([index[v] for v in values], dtype=torch.long), names


def label_strings(values: Sequence[object], source: str) -> list[str]:
    """Raw label values of a JSON/parquet column as strings for :func:`infer_labels`: integers,
    strings and booleans (``"false"``/``"true"``, as JSON spells them); anything else is refused."""
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, int):
            out.append(str(v))
        elif isinstance(v, str) and v.strip():
            out.append(v.strip())
        elif v is None or isinstance(v, str):
            raise RobenchError(f"{source}: example {i} has no label; every example needs one")
        else:
            raise RobenchError(f"{source}: example {i} has the label {v!r} ({type(v).__name__}); labels must be "
                               "integers 0..K-1 or strings (label names)")
    return out


def read_label_file(path: Path | str) -> list[str]:
    """``--labels FILE``: one label name per line (blank lines ignored), in class-index order."""
    from robench.fileio import read_text_file

    path = Path(path)
    raw = read_text_file(path, "--labels file").removeprefix("\ufeff")
    names = [line.strip() for line in raw.splitlines() if line.strip()]
    if not names:
        raise RobenchError(f"--labels file {path} is empty; write one label name per line")
    dup = sorted(n for n, k in Counter(names).items() if k > 1)
    if dup:
        raise RobenchError(f"--labels file {path} lists {_show(dup)} more than once; each label name once, one per line")
    return names


def align_labels(ds: Dataset, names: Sequence[str], owner: str = "the model",
                 fix: str = "drop those examples or use data of that label set") -> Dataset:
    """``ds`` with ``labels = names`` and its targets re-indexed into that label space, by name.

    A dataset may use only some of ``names`` (an evaluation file missing some classes). Integer
    labels (names ``"0".."K-1"``) that are not all among ``names`` are positions into ``names``.
    A label of ``ds`` that ``owner`` does not know -> one error listing them (``fix`` says what to
    do about it). Only ``ds.labels`` and ``ds.targets`` are read, so any Dataset (text, images, a
    streamed one) can be aligned; ``sha256`` stays the source's: it names the data that was read.
    """
    names = list(names)
    if list(ds.labels) == names:
        return ds
    used = sorted(set(ds.targets.tolist()))
    used_names = [ds.labels[i] for i in used]
    index = {n: i for i, n in enumerate(names)}
    if not used or all(n in index for n in used_names):
        mapping = torch.tensor([index.get(n, -1) for n in ds.labels], dtype=torch.long)
        return replace(ds, labels=names, targets=mapping[ds.targets])
    if positional(ds.labels):
        if used[-1] < len(names):
            return replace(ds, labels=names)
        beyond = [str(i) for i in used if i >= len(names)]
        raise RobenchError(f"dataset {ds.name} has integer labels {', '.join(beyond)} but {owner} has "
                           f"{len(names)} classes (0..{len(names) - 1}); {fix}")
    unknown = [n for n in used_names if n not in index]
    raise RobenchError(f"dataset {ds.name} has labels {owner} does not know: {_show(unknown)} "
                       f"(its labels: {_show(names)}); {fix}")
