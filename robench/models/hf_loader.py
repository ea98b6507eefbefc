"""``hf:DIR``: a local Hugging Face model folder (``save_pretrained``) as a robench model.

The task comes from the folder's ``config.json`` (``AutoConfig``, local files only): its
``architectures`` entry, looked up in transformers' own Auto-class mappings (then by the class
name's suffix, for classes those mappings do not list):

- ``*ForSequenceClassification``: a text classifier, ``AutoModelForSequenceClassification`` +
  ``AutoTokenizer`` (this module);
- ``*ForImageClassification``: an image classifier, ``AutoModelForImageClassification`` +
  ``AutoImageProcessor`` (:mod:`robench.models.hf_image`);
- ``*ForCausalLM`` / ``*LMHeadModel``: a language model scored by perplexity,
  ``AutoModelForCausalLM`` + ``AutoTokenizer`` (:mod:`robench.models.hf_lm`).

Any other class (a bare encoder, token classification, masked LM, ...) is refused with one line.
Everything is read from DIR only (``local_files_only``: nothing is downloaded), and no code from
the folder runs (``trust_remote_code`` stays off).

The text wrapper exposes robench's text-model interface (``encode`` -> padded ids, ``forward(ids)``
-> logits, ``predict_texts``, ``tokenizer``), so every text threat runs on it, textattack's recipes included.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
import re
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from robench.checkpoint.card import Card, ExternalArch
from robench.data.base import IMAGE, LM, TEXT
from robench.data.hf_images import quiet_transformers
from robench.errors import RobenchError
from robench.fileio import sha256_file
from robench.models.wrappers import TextClassifier

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt")  # shards too
TASK_SUFFIXES = ((IMAGE, ("ForImageClassification", "ForImageClassificationWithTeacher")),
                 (LM, ("ForCausalLM", "LMHeadModel")), (TEXT, ("ForSequenceClassification",)))
TAKES = ("hf: takes an image classifier (*ForImageClassification), a text classifier (*ForSequenceClassification) "
         "or a causal language model (*ForCausalLM, *LMHeadModel)")
# what AutoTokenizer reads (one of them is enough): fast tokenizer, byte-level BPE, SentencePiece, WordPiece
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model", "vocab.txt")


def first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:160]


def hf_directory(spec: str) -> Path:
    directory = Path(spec[len("hf:"):])
    if not directory.is_dir():
        raise RobenchError(f"{spec}: {directory} is not a directory (hf: takes a local save_pretrained folder)")
    return directory


def read_config(spec: str, directory: Path) -> Any:
    """The folder's ``config.json`` as transformers reads it."""
    if not (directory / "config.json").is_file():
        raise RobenchError(f"{spec}: {directory} has no config.json; hf: takes a folder written by save_pretrained "
                           "(config.json, the weights and the tokenizer or image processor files)")
    from transformers import AutoConfig

    quiet_transformers()
    try:
        return AutoConfig.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise RobenchError(f"{spec}: config.json cannot be read by transformers ({first_line(e)})") from None


def _mapped(names: dict) -> set[str]:
    out: set[str] = set()
    for v in names.values():
        out.update((v,) if isinstance(v, str) else v)
    return out


def task_of(spec: str, config: Any) -> str:
    """The robench task of the class named by ``config.architectures`` (one line if unsupported)."""
    from transformers.models.auto import modeling_auto as auto

    archs = list(getattr(config, "architectures", None) or [])
    if not archs:
        raise RobenchError(f"{spec}: config.json names no architecture (its 'architectures' is empty); save the model "
                           "itself with model.save_pretrained(DIR), which records its class; " + TAKES)
    arch = archs[0]
    mappings = ((IMAGE, auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES), (LM, auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES),
                (TEXT, auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES))
    for task, names in mappings:
        if arch in _mapped(names):
            return task
    for task, suffixes in TASK_SUFFIXES:
        if arch.endswith(suffixes):
            return task
    head = re.search(r"For([A-Z]\w*)$", arch)
    what = (f"a {re.sub(r'(?<!^)(?=[A-Z])', ' ', head.group(1)).lower()} model" if head
            else "a base model without a task head")
    raise RobenchError(f"{spec}: config.json names {arch}, {what}; {TAKES}")


def whole_words(tokenizer: Any) -> list[str]:
    """The alphabetic words that ``tokenizer`` encodes as one token after a space, as text.

    Raw vocabulary entries are not words: byte-level BPE writes ``Ġthe``, SentencePiece ``▁the``,
    WordPiece ``##ing`` (and ``Ġ`` counts as a letter to ``str.isalpha``), so word-swap would write
    them into the text. Decoding each id and re-encoding ``"a WORD"`` keeps the real words only.
    """
    words = sorted({w for w in (tokenizer.decode([i]).strip() for i in range(len(tokenizer))) if w.isalpha()})
    if not words:
        return []
    lead = len(tokenizer.encode("a", add_special_tokens=False))
    rows = tokenizer([f"a {w}" for w in words], add_special_tokens=False)["input_ids"]
    return [w for w, row in zip(words, rows) if len(row) == lead + 1]


def weights_digest(directory: Path) -> str:
    """sha256 of the folder's weights file (empty when sharded or absent)."""
    weights = next((directory / n for n in ("model.safetensors", "pytorch_model.bin") if (directory / n).is_file()), None)
    return sha256_file(weights) if weights else ""


def load_tokenizer(spec: str, directory: Path) -> Any:
    """``AutoTokenizer`` of the folder; a folder without tokenizer files is one line saying how to add them."""
    if not any((directory / n).is_file() for n in TOKENIZER_FILES):
        raise RobenchError(f"{spec}: no tokenizer files in {directory} (tokenizer.json, or vocab.json + merges.txt, ...); "
                           "save the tokenizer beside the model: tokenizer.save_pretrained(DIR)")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RobenchError(f"{spec}: its tokenizer files cannot be loaded ({first_line(e)})") from None


def from_pretrained(spec: str, auto_class, directory: Path, what: str) -> nn.Module:
    """``auto_class.from_pretrained(directory)``, local files only, in eval mode; failures are one line."""
    try:
        model = auto_class.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise RobenchError(f"{spec}: not a loadable {what} ({first_line(e)})") from None
    return model.eval()


def hf_labels(config: Any) -> list[str]:
    """Class names from ``config.id2label`` (HF's placeholders ``LABEL_i`` when it was saved without names)."""
    return [str(config.id2label[i]) for i in range(config.num_labels)]


class HFTokenizer:
    """robench's tokenizer interface over a Hugging Face tokenizer (whole texts only)."""

    incremental = False  # subword merges and special tokens: one-word edits are re-encoded whole

    def __init__(self, tokenizer, max_length: int) -> None:
        self.hf = tokenizer
        self.max_length = max_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @cached_property
    def vocab(self) -> list[str]:
        """Whole words of the vocabulary (word-swap's replacements; :func:`whole_words`)."""
        return whole_words(self.hf)

    def encode(self, text: str) -> list[int]:
        return self.hf(text, truncation=True, max_length=self.max_length)["input_ids"]

    def __call__(self, texts: Sequence[str]) -> Tensor:
        rows = [self.encode(t) for t in texts]
        width = max((len(r) for r in rows), default=1)
        return torch.tensor([r + [self.pad_id] * (width - len(r)) for r in rows], dtype=torch.long)


class HFTextClassifier(TextClassifier):
    """A :class:`TextClassifier` whose forward builds the attention mask from the padding id."""

    def forward(self, input_ids: Tensor) -> Tensor:
        mask = (input_ids != self.tokenizer.pad_id).long()
        return self.net(input_ids=input_ids, attention_mask=mask).logits


def load_hf_text(spec: str, directory: Path) -> tuple[HFTextClassifier, Card, str]:
    """A sequence-classification folder: model, tokenizer, card."""
    from transformers import AutoModelForSequenceClassification

    model = from_pretrained(spec, AutoModelForSequenceClassification, directory, "sequence-classification model")
    tok = load_tokenizer(spec, directory)
    cfg = model.config
    max_length = int(min(getattr(tok, "model_max_length", 512) or 512, getattr(cfg, "max_position_embeddings", 512) or 512))
    digest = weights_digest(directory)
    card = Card(
        task=TEXT, labels=hf_labels(cfg),
        architecture=ExternalArch("hf", str(cfg.model_type), cfg.num_labels),
        preprocessing={"kind": "text", "tokenizer": "hf", "dir": str(directory), "max_length": max_length,
                       "lowercase": bool(getattr(tok, "do_lower_case", False))},
        name=spec, weights_sha256=digest, params=sum(p.numel() for p in model.parameters()),
    )
    return HFTextClassifier(model, HFTokenizer(tok, max_length)), card, digest


def load_hf(spec: str) -> tuple[nn.Module, Card, str]:
    """Load ``hf:DIR`` as the task its config names; returns ``(module, card, sha256 of the weights file)``."""
    directory = hf_directory(spec)
    config = read_config(spec, directory)
    task = task_of(spec, config)
    if task == IMAGE:
        from robench.models.hf_image import load_hf_image

        module, card, digest = load_hf_image(spec, directory, config)
    elif task == LM:
        from robench.models.hf_lm import load_hf_lm

        module, card, digest = load_hf_lm(spec, directory, config)
    else:
        module, card, digest = load_hf_text(spec, directory)
    # The weights' sha256 does not see an edited preprocessor_config.json or tokenizer: the folder's
    # other files go into the contract, which a resumed run (run.json) must match too.
    card.preprocessing["folder_sha256"] = folder_digest(directory)
    return module, card, digest


def folder_digest(directory: Path) -> str:
    """sha256 over the names and contents of the folder's files other than its weights."""
    h = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.is_file() and p.suffix not in WEIGHT_SUFFIXES):
        h.update(path.name.encode() + b"\0" + sha256_file(path).encode() + b"\0")
    return h.hexdigest()
