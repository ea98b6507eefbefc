"""Where robench keeps its data: ``$ROBENCH_HOME`` (default ``~/.cache/robench``)."""

from __future__ import annotations

import os
from pathlib import Path


# The checkout robench runs from: its top-level models/ (the zoo) and attacks/ (suites) sit here.
REPO_ROOT = Path(__file__).resolve().parents[2]


def robench_home() -> Path:
    """Root of robench's caches and provisioned resources."""
    return Path(os.environ.get("ROBENCH_HOME") or Path.home() / ".cache" / "robench")


def nltk_data_dir() -> Path:
    """The NLTK data directory robench provisions (WordNet, stopwords) and adds to NLTK's path."""
    return robench_home() / "nltk_data"


def cache_dir(kind: str) -> Path:
    return robench_home() / kind
