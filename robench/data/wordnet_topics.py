"""``wordnet-topics``: WordNet 3.0 noun definitions labelled by lexicographer file.

Four classes (noun.animal, noun.artifact, noun.food, noun.plant). The text of an example is the
synset's definition as NLTK gives it (gloss parts that are not quoted examples, joined by "; "),
kept when it has at least 3 words and is not shared by synsets of two different classes. A seeded
balanced sample of 1,500 per class is split 80/20 (stratified, seeded). Built from the installed
WordNet (see :mod:`robench.resources.wordnet`) and cached as JSON under ``$ROBENCH_HOME/datasets``.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from robench.data.base import TEXT, Dataset, content_sha256, stratified_split
from robench.data.registry import register_dataset
from robench.errors import RobenchError
from robench.fileio import atomic_write_text, sha256_bytes
from robench.resources.paths import cache_dir
from robench.resources.wordnet import require_wordnet

LEXFILES = {"05": "noun.animal", "06": "noun.artifact", "13": "noun.food", "20": "noun.plant"}
LABELS = list(LEXFILES.values())
PER_CLASS = 1500
MIN_WORDS = 3
SEED = 0
TEST_FRACTION = 0.2
VERSION = 1


def parse_definitions(data_noun: str) -> dict[str, list[str]]:
    """Definitions of the four lexicographer files from the text of WordNet's ``data.noun``."""
    out: dict[str, list[str]] = {name: [] for name in LABELS}
    for line in data_noun.splitlines():
        if not line or line.startswith(" "):  # the license header is indented
            continue
        lex = line[9:11]
        if lex not in LEXFILES or " | " not in line:
            continue
        gloss = line.split(" | ", 1)[1].strip()
        parts = [p.strip() for p in gloss.split(";")]
        definition = "; ".join(p for p in parts if p and not p.startswith('"'))
        if len(definition.split()) >= MIN_WORDS:
            out[LEXFILES[lex]].append(definition)
    return out


def build(data_noun: str) -> dict:
    """Sample and split; pure function of the WordNet text (so the cache can be checked)."""
    defs = parse_definitions(data_noun)
    owner: dict[str, set[str]] = {}
    for label, texts in defs.items():
        for t in texts:
            owner.setdefault(t, set()).add(label)
    rng = np.random.default_rng(SEED)
    texts, targets = [], []
    for c, label in enumerate(LABELS):
        # Unique within the class, never ambiguous across classes; sorted so order is file-independent.
        pool = sorted({t for t in defs[label] if len(owner[t]) == 1})
        if len(pool) < PER_CLASS:
            raise RobenchError(f"WordNet has only {len(pool)} usable {label} definitions (need {PER_CLASS}); is it WordNet 3.0?")
        for i in np.sort(rng.choice(len(pool), size=PER_CLASS, replace=False)):
            texts.append(pool[i])
            targets.append(c)
    y = np.asarray(targets)
    train_idx, test_idx = stratified_split(y, TEST_FRACTION, SEED)
    return {
        "version": VERSION,
        "source_sha256": sha256_bytes(data_noun.encode("utf-8")),
        "texts": texts,
        "targets": targets,
        "splits": {"train": train_idx.tolist(), "test": test_idx.tolist()},
    }


def _load_built() -> dict:
    path = cache_dir("datasets") / f"wordnet-topics-v{VERSION}.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if data.get("version") == VERSION:
                return data
        except (OSError, json.JSONDecodeError):
            pass  # a damaged cache is rebuilt below
    src = require_wordnet()
    data = build(src.read("data.noun").decode("utf-8"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data))
    except (OSError, RobenchError):
        pass  # caching is an optimisation; a read-only home still works
    return data


@register_dataset("wordnet-topics")
def load_wordnet_topics(split: str) -> Dataset:
    """The ``train`` (4,800) or ``test`` (1,200) split of wordnet-topics."""
    data = _load_built()
    if split not in data["splits"]:
        raise RobenchError(f"dataset 'wordnet-topics' has splits train, test; got {split!r}")
    idx = data["splits"][split]
    texts = [data["texts"][i] for i in idx]
    y = torch.tensor([data["targets"][i] for i in idx], dtype=torch.long)
    return Dataset(
        name="wordnet-topics", task=TEXT, split=split, labels=list(LABELS),
        inputs=texts, targets=y, ids=list(idx), sha256=content_sha256(texts, y),
    )
