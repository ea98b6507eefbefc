"""WordNet synonyms exactly as textattack's ``WordSwapWordNet`` proposes them (cached per word)."""

from __future__ import annotations

import functools

from robench.resources.nltk_setup import require_nltk_resources, use_robench_nltk_data
from robench.threats.text.words import words_from_text


@functools.lru_cache(maxsize=1)
def _wordnet():
    require_nltk_resources()
    nltk = use_robench_nltk_data()
    from nltk.corpus import wordnet

    wordnet.ensure_loaded()
    del nltk
    return wordnet


@functools.lru_cache(maxsize=200_000)
def wordnet_synonyms(word: str) -> tuple[str, ...]:
    """One-word lemma names of every synset of ``word``, other than ``word`` itself."""
    wn = _wordnet()
    out = set()
    for syn in wn.synsets(word, lang="eng"):
        for lemma in syn.lemma_names(lang="eng"):
            if lemma != word and "_" not in lemma and len(words_from_text(lemma)) == 1:
                out.add(lemma)
    return tuple(out)


@functools.lru_cache(maxsize=1)
def nltk_stopwords() -> frozenset[str]:
    """NLTK's English stopwords (what textattack's StopwordModification uses)."""
    require_nltk_resources()
    use_robench_nltk_data()
    from nltk.corpus import stopwords

    return frozenset(stopwords.words("english"))
