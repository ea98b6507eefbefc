"""``hf:DIR`` causal language models: ``AutoModelForCausalLM`` + ``AutoTokenizer`` (GPT-2 style).

The model is wrapped as robench's own LMs are (:class:`~robench.models.lm.LanguageModel`, with a
tokenizer of :class:`~robench.lm.corpus.LMTokenizer`'s interface), so robench's perplexity
protocol (:mod:`robench.lm.perplexity`: sliding windows of the context L every L // 2 tokens, each
token scored once) and its contamination threats run on it unchanged.

**Stream.** The Hugging Face tokenizer is used as it is (no special tokens added per line): each
line of the evaluation file is encoded on its own, followed by the tokenizer's newline token (the
last token of ``encode("\\n")``; the end-of-text token if newline encodes to nothing), as
robench's own LMs follow each line with ``<eos>``; the stream is preceded by one start token (the
tokenizer's ``bos_token``, else its ``eos_token``: GPT-2's ``<|endoftext|>``) so that its first
token is predicted too. Contamination rewrites the *words of each line before tokenisation*, as
for robench's LMs; ``word-swap`` draws replacement words from the tokenizer's whole-word tokens
(alphabetic tokens that read as one token after a space).

**Context.** ``n_positions`` (GPT-2) or ``max_position_embeddings`` from config.json;
``robench evaluate --lm-context N`` evaluates with a shorter one.
"""

from __future__ import annotations

import inspect
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import Tensor

from robench.checkpoint.card import Card, ExternalArch
from robench.data.base import LM
from robench.errors import RobenchError
from robench.models.hf_loader import from_pretrained, load_tokenizer, weights_digest, whole_words
from robench.models.lm import LanguageModel

KIND = "hf"


class HFLMTokenizer:
    """The language-model tokenizer interface (``line_ids``, ``stream``, ``vocab``, ``max_length``,
    ``start_id``) over a Hugging Face tokenizer."""

    def __init__(self, tokenizer: Any, context: int, directory: str) -> None:
        self.hf = tokenizer
        self.max_length = context
        self.directory = directory
        newline = tokenizer.encode("\n", add_special_tokens=False)
        end = tokenizer.eos_token_id
        if not newline and end is None:
            raise RobenchError(f"hf:{directory}: its tokenizer encodes a newline as nothing and has no eos_token; "
                               "robench cannot mark line ends")
        self.eol_id = int(newline[-1]) if newline else int(end)
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else end
        self.start_id = int(start) if start is not None else self.eol_id
        self.eos_id = self.eol_id  # robench's LMTokenizer name for the line end

    def __len__(self) -> int:
        return len(self.hf)

    def line_ids(self, line: str) -> list[int]:
        """Ids of one line's text followed by the newline token."""
        return list(self.hf.encode(line, add_special_tokens=False)) + [self.eol_id]

    def stream(self, lines: Iterable[str]) -> Tensor:
        """One LongTensor of every line's ids, in order (lines encoded in one batch call)."""
        lines = list(lines)
        if not lines:
            return torch.zeros(0, dtype=torch.long)
        rows = self.hf(lines, add_special_tokens=False)["input_ids"]
        return torch.tensor([i for row in rows for i in [*row, self.eol_id]], dtype=torch.long)

    @cached_property
    def vocab(self) -> list[str]:
        """Whole words of the vocabulary (word-swap's replacements; :func:`whole_words`)."""
        return whole_words(self.hf)

    def describe(self) -> str:
        """What the text went through, for the rows."""
        start = self.hf.convert_ids_to_tokens(self.start_id)
        return (f"hf tokenizer {type(self.hf).__name__} ({self.directory}, {len(self)} tokens): each line "
                f"+ newline token {self.eol_id}, stream after {start}")


class HFLanguageModel(LanguageModel):
    """``forward(ids (B, N), keep_from) -> logits (B, N - keep_from, V)`` of a causal HF model."""

    def __init__(self, net: torch.nn.Module, tokenizer: HFLMTokenizer) -> None:
        super().__init__(net, tokenizer)
        # GPT-2, Llama and most causal LMs project only the last k positions when asked (less memory)
        self.keep_arg = "logits_to_keep" in inspect.signature(net.forward).parameters

    def forward(self, input_ids: Tensor, keep_from: int = 0) -> Tensor:
        if self.keep_arg:
            return self.net(input_ids=input_ids, use_cache=False, logits_to_keep=input_ids.shape[1] - keep_from).logits
        return self.net(input_ids=input_ids, use_cache=False).logits[:, keep_from:]


def model_context(spec: str, config: Any, tokenizer: Any) -> int:
    """The model's context in tokens: ``n_positions`` / ``max_position_embeddings``."""
    for key in ("n_positions", "max_position_embeddings"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 1_000_000:  # transformers' "no limit" is ~1e30
        return value
    raise RobenchError(f"{spec}: config.json gives no n_positions or max_position_embeddings (the model's context); "
                       "add one to config.json")


def load_hf_lm(spec: str, directory: Path, config: Any) -> tuple[HFLanguageModel, Card, str]:
    """A causal-LM folder: the wrapped model and tokenizer, and its card (no default evaluation file)."""
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(spec, directory)
    context = model_context(spec, config, tok)
    model = from_pretrained(spec, AutoModelForCausalLM, directory, "causal language model")
    digest = weights_digest(directory)
    tokenizer = HFLMTokenizer(tok, context, str(directory))
    card = Card(
        task=LM, labels=[], architecture=ExternalArch("hf", str(model.config.model_type), 0),
        preprocessing={"kind": "text", "tokenizer": KIND, "dir": str(directory), "tokenizer_class": type(tok).__name__,
                       "max_length": context, "line_end_id": tokenizer.eol_id, "start_id": tokenizer.start_id},
        name=spec, weights_sha256=digest, params=sum(p.numel() for p in model.parameters()),
    )
    return HFLanguageModel(model, tokenizer), card, digest
