"""Tiny Hugging Face model folders built here with random weights (no downloads): ViT and DeiT image
classifiers with their image processors, a GPT-2 with a byte-level BPE trained on WikiText-2 lines,
and the broken folders of the bad-input catalogue."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import SHARED_DATA

WIKI = SHARED_DATA / "wikitext2"
VIT_SIZES = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64}


def vit_dir(d: Path, labels: list[str], seed: int = 0, size: int = 32) -> Path:
    """A ViT classifier whose processor squashes every image to ``size`` x ``size`` (bilinear)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    cfg = ViTConfig(**VIT_SIZES, num_labels=len(labels), id2label=dict(enumerate(labels)),
                    label2id={l: i for i, l in enumerate(labels)})
    ViTForImageClassification(cfg).eval().save_pretrained(d)
    ViTImageProcessor(size={"height": size, "width": size}).save_pretrained(d)
    return d


def deit_dir(d: Path, labels: list[str], seed: int = 1) -> Path:
    """A DeiT classifier whose processor resizes to 40 x 40 bicubic, then centre-crops 32 x 32."""
    import torch
    from transformers import DeiTConfig, DeiTForImageClassification, DeiTImageProcessor

    torch.manual_seed(seed)
    cfg = DeiTConfig(**VIT_SIZES, num_labels=len(labels), id2label=dict(enumerate(labels)),
                     label2id={l: i for i, l in enumerate(labels)})
    DeiTForImageClassification(cfg).eval().save_pretrained(d)
    DeiTImageProcessor(size={"height": 40, "width": 40}, crop_size={"height": 32, "width": 32},
                       image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(d)
    return d


def wiki_lines(name: str, start: int, count: int) -> list[str]:
    return (WIKI / name).read_text(encoding="utf-8").splitlines()[start : start + count]


def gpt2_tokenizer(vocab_size: int = 400):
    """A byte-level BPE (GPT-2's pre-tokenizer and decoder) trained on 300 lines of wiki.valid."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(wiki_lines("wiki.valid.tokens", 0, 300), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return GPT2TokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                             unk_token="<|endoftext|>", model_max_length=64)


def gpt2_dir(d: Path, tokenizer, seed: int = 0, n_positions: int = 64, tokenizer_files: bool = True) -> Path:
    """A 2-layer GPT-2 (width 32) with ``tokenizer`` saved beside it (or not)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=n_positions, vocab_size=len(tokenizer),
                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    GPT2LMHeadModel(cfg).eval().save_pretrained(d)
    if tokenizer_files:
        tokenizer.save_pretrained(d)
    return d


def bad_hf_dirs(d: Path) -> None:
    """The hf: folders of the bad-input catalogue, under ``d``: a config without an architecture,
    another task's config, a bare encoder, an image classifier without its processor, one with 3
    classes beside 3- and 5-class image folders, a GPT-2 without tokenizer files."""
    import torch
    from transformers import BertConfig, BertForTokenClassification, BertModel

    from imagetrees import make_tree

    bert = {"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}
    torch.manual_seed(0)
    BertForTokenClassification(BertConfig(**bert, num_labels=3)).save_pretrained(d / "hf_tokencls")
    BertModel(BertConfig(**bert)).save_pretrained(d / "hf_bert")
    BertConfig(**bert).save_pretrained(d / "hf_config_only")
    vit_dir(d / "hf_vit3", ["0", "1", "2"])
    shutil.copytree(d / "hf_vit3", d / "hf_vit_noproc")
    (d / "hf_vit_noproc" / "preprocessor_config.json").unlink()
    make_tree(d / "hf_images5", [str(i) for i in range(5)], 2, seed=3)
    make_tree(d / "hf_images3", [str(i) for i in range(3)], 2, seed=4)
    gpt2_dir(d / "hf_gpt2_notok", gpt2_tokenizer(300), tokenizer_files=False)
