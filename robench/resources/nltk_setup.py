"""Make NLTK and textattack work offline: robench's NLTK dir on the path, no download attempts.

``import textattack`` calls ``nltk.download(...)`` at import time (and some transformations do in
their constructors); offline that fails and textattack then crashes on missing stopwords. robench
puts its provisioned NLTK dir first on NLTK's path, checks WordNet + stopwords are readable, and
turns ``nltk.download`` into a no-op while textattack is imported and while its attacks are built.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from robench.errors import RobenchError
from robench.resources.paths import nltk_data_dir
from robench.resources.wordnet import HOW_TO_GET_WORDNET, find_stopwords, find_wordnet


def require_nltk_resources() -> None:
    """WordNet and English stopwords must be readable by NLTK (not only Debian's raw files)."""
    if find_wordnet(include_debian=False) is None:
        hint = "run `robench doctor --fix`" if find_wordnet() is not None else HOW_TO_GET_WORDNET
        raise RobenchError(f"text word-level threats need WordNet readable by NLTK, and it is not; {hint}")
    if find_stopwords() is None:
        raise RobenchError("text threats need NLTK's English stopwords, which are missing; run `robench doctor --fix`")


def use_robench_nltk_data() -> Any:
    """Import nltk with robench's NLTK dir first on its data path; returns the nltk module."""
    import nltk

    d = str(nltk_data_dir())
    if d not in nltk.data.path:
        nltk.data.path.insert(0, d)
    return nltk


@contextlib.contextmanager
def no_nltk_downloads() -> Iterator[None]:
    """Replace ``nltk.download`` with a no-op for the duration (nothing is fetched at run time)."""
    nltk = use_robench_nltk_data()
    original = nltk.download
    nltk.download = lambda *args, **kwargs: True
    try:
        yield
    finally:
        nltk.download = original


def import_textattack() -> Any:
    """Import textattack offline-safely (WordNet and stopwords checked first)."""
    require_nltk_resources()
    # textattack reads these at import; without them it may try the hub for tokenizers.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    with no_nltk_downloads():
        try:
            import textattack
        except ImportError as e:
            raise RobenchError(f"textattack is not importable ({e}); install it: pip install textattack==0.3.11") from None
    # textattack logs install chatter and compatibility notes on stderr; robench's contract is one
    # line on failure and clean machine output, so only its errors get through.
    import logging

    for name in ("textattack", "textattack.shared.utils.install"):  # the latter has its own level
        logging.getLogger(name).setLevel(logging.ERROR)
    return textattack
