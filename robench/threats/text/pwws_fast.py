"""``pwws-fast``: robench's batched PWWS (Ren et al. 2019), the same attack as textattack's
``PWWSRen2019`` recipe without its per-text overhead.

Algorithm (as textattack implements it: WordSwapWordNet, RepeatModification, NLTK-stopword
modification, untargeted goal, GreedyWordSwapWIR("weighted-saliency")):

1. saliency of word i = score after replacing it by ``[UNK]``, where score = 1 - p(true label);
2. delta_p of word i = the best score among its WordNet synonym swaps;
3. rank words by softmax(saliency) * delta_p;
4. greedily take each word's best swap if it raises the score, until the prediction flips.

Every example of a batch runs in lockstep, so each phase is a few large forward passes over all
examples' candidate texts (on the model's device) instead of one small call per text. Candidates
are ordered by text and ties resolved as textattack does, so both engines give the same
adversarial text. Query counting and ``query_budget`` follow textattack too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from robench.resources.nltk_setup import require_nltk_resources
from robench.threats.registry import Param, register_threat
from robench.threats.text.base import TextThreat, ids_probs, scored_outcome
from robench.threats.text.synonyms import nltk_stopwords, wordnet_synonyms
from robench.threats.text.words import WordText

if TYPE_CHECKING:  # numpy and torch are imported where the attack runs, so listing threats stays fast
    import torch

UNK = "[UNK]"


@dataclass
class _State:
    pos: int
    label: int
    text: WordText
    budget: float
    queries: int = 0
    over: bool = False
    indices: list[int] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    step: int = 0
    cur_text: str = ""
    cur_score: float = 0.0
    done: bool = False

    def take(self, texts: list[str]) -> list[str]:
        """Truncate to the remaining budget and count the queries (textattack's rule)."""
        if self.budget < float("inf"):
            texts = texts[: max(0, int(self.budget - self.queries))]
        self.queries += len(texts)
        self.over = self.queries == self.budget
        return texts


def _candidates(wt: WordText, index: int) -> list[str]:
    word = wt.words[index]
    texts = {wt.replace(index, s) for s in wordnet_synonyms(word) if s != word}
    texts.discard(wt.text)
    return sorted(texts)


class _Encoder:
    """Token ids of one-word edits without re-tokenizing whole texts: the tokens of the text
    before and after a word are computed once per (text, word) and reused for every substitute
    (robench's tokenizer never joins characters across a textattack word boundary)."""

    def __init__(self, tokenizer) -> None:
        self.tok = tokenizer
        self.ids: dict[str, tuple[int, ...]] = {}
        self.word_ids: dict[str, list[int]] = {}

    def whole(self, text: str) -> None:
        if text not in self.ids:
            self.ids[text] = tuple(self.tok.encode(text))

    def edits(self, wt: WordText, index: int, texts: list[str]) -> None:
        if not getattr(self.tok, "incremental", True):  # e.g. subword tokenizers: encode whole texts
            for t in texts:
                self.whole(t)
            return
        s, e = wt.spans[index]
        prefix, suffix = self.tok.ids(wt.text[:s]), self.tok.ids(wt.text[e:])
        for t in texts:
            if t not in self.ids:
                middle = t[s : len(t) - (len(wt.text) - e)]
                mid = self.word_ids.get(middle)
                if mid is None:
                    mid = self.word_ids[middle] = self.tok.ids(middle)
                self.ids[t] = tuple(self.tok.finish(prefix + mid + suffix))


@register_threat
class PWWSFast(TextThreat):
    name = "pwws-fast"
    summary = "robench's batched PWWS: same search as textattack's PWWSRen2019, all queries of a step in one forward"
    params = (
        Param("query_budget", "int", 0, "max model queries per example (0 = unlimited)", "queries", low=0, high=10**9),
        Param("batch_size", "int", 512, "texts per forward pass", low=1, high=10**6),
    )

    def check_available(self) -> None:
        require_nltk_resources()  # WordNet synonyms and NLTK's stopwords

    def warm_up(self) -> None:
        """WordNet's index and the stopwords (seconds on first use), before the clock starts."""
        wordnet_synonyms("good")
        nltk_stopwords()

    def perturb(self, model, batch):
        import numpy as np
        import torch

        budget = float("inf") if self.query_budget == 0 else float(self.query_budget)
        stop = nltk_stopwords()
        states = [_State(i, int(y), WordText(t), budget) for i, (t, y) in enumerate(zip(batch.inputs, batch.labels.tolist()))]
        cache: dict[str, torch.Tensor] = {}
        enc = _Encoder(model.tokenizer)

        def score(requests: list[tuple[int, list[str]]]) -> list[list[float]]:
            """Scores (1 - p_true) for each state's texts, with one batched forward for all."""
            todo = sorted({t for _, ts in requests for t in ts if t not in cache})
            if todo:
                for t in todo:
                    enc.whole(t)  # no-op for one-word edits, which _Encoder.edits already encoded
                for t, p in zip(todo, ids_probs(model, [enc.ids[t] for t in todo], self.batch_size)):
                    cache[t] = p
            return [[1.0 - float(cache[t][states[i].label]) for t in ts] for i, ts in requests]

        def candidates(wt: WordText, index: int) -> list[str]:
            texts = _candidates(wt, index)
            enc.edits(wt, index, texts)
            return texts

        # initial result: one query per example
        first = score([(i, s.take([s.text.text])) for i, s in enumerate(states)])
        for s, sc in zip(states, first):
            s.cur_text, s.cur_score = s.text.text, sc[0]
            s.indices = [i for i, w in enumerate(s.text.words) if w not in stop]

        # phase 1: saliency ([UNK] leave-one) and best swap per word, all examples at once
        requests, layout = [], []
        for i, s in enumerate(states):
            leave = s.take([s.text.replace(j, UNK) for j in s.indices])
            for j in s.indices:
                enc.edits(s.text, j, [s.text.replace(j, UNK)])
            requests.append((i, leave))
            per_word = []
            for j in s.indices:
                if s.over:
                    per_word.append(None)
                    continue
                cands = candidates(s.text, j)
                per_word.append(s.take(cands) if cands else [])
            layout.append(per_word)
            requests.extend((i, c) for c in per_word if c)
        scored = iter(score(requests))
        for i, s in enumerate(states):
            sal = np.array(next(scored), dtype=np.float32)
            # np.float32 maxima next to python 0.0s: the same dtype promotion as textattack's list
            deltas = [np.max(np.array(next(scored), dtype=np.float32)) if c else 0.0 for c in layout[i]]
            if len(sal) < len(s.indices):  # budget ran out during saliency: textattack's order is then undefined; keep positions
                s.order = []
                continue
            soft = torch.softmax(torch.tensor(sal), dim=0).numpy()
            index_scores = soft * np.array(deltas)
            s.order = list(np.array(s.indices)[(-index_scores).argsort()]) if s.indices else []

        # phase 2: greedy substitution, one step for every still-searching example per forward
        active = [s for s in states if s.order and not s.over]
        while active:
            requests = []
            for s in active:
                while s.step < len(s.order):
                    j = int(s.order[s.step])
                    s.step += 1
                    cands = candidates(WordText(s.cur_text), j)
                    if cands:
                        requests.append((s.pos, s.take(cands)))
                        break
            if not requests:
                break
            for (i, ts), scs in zip(requests, score(requests)):
                s = states[i]
                if scs:
                    # first maximum in text order, as textattack's stable sort; scores equal up to
                    # float noise from batch padding count as ties (candidates mapping to the same
                    # tokens, e.g. two out-of-vocabulary synonyms, score identically)
                    top = max(scs)
                    best = next(k for k, v in enumerate(scs) if v >= top - 1e-6)
                    if scs[best] > s.cur_score:
                        s.cur_text, s.cur_score = ts[best], scs[best]
                        if int(cache[s.cur_text].argmax()) != s.label:
                            s.done = True
            active = [s for s in active if not s.done and not s.over and s.step < len(s.order)]

        # a failed attack keeps the original text, as robench's textattack runs record it (not the last swap tried)
        adv = [s.cur_text if s.done else s.text.text for s in states]
        probs = torch.stack([cache[t] for t in adv]) if adv else None
        return scored_outcome(model, adv, torch.tensor([float(s.queries) for s in states]), probs)
