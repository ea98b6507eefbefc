"""``robench train --task lm``: a causal word-level language model on a token file -> checkpoint + card.

The training file (``--data``) becomes one token stream (``robench.lm.corpus``) cut into
consecutive non-overlapping sequences of ``context + 1`` tokens (inputs and shifted targets),
shuffled per epoch by a seeded generator; loss is the mean next-token cross-entropy. After the
last epoch the perplexity of ``--eval-data`` (sliding window, ``robench.lm.perplexity``) goes to the card.
Deterministic on CPU like every ``robench train``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from robench import __version__
from robench.checkpoint.card import Card
from robench.checkpoint.io import card_path_for, save_checkpoint
from robench.data.base import LM as TASK
from robench.lm.corpus import LMTokenizer, read_lines
from robench.data.card_paths import locate
from robench.errors import RobenchError
from robench.fileio import sha256_file
from robench.models.config import ArchConfig
from robench.models.lm import LanguageModel
from robench.models.registry import build_model
from robench.training.loop import EpochStats, Schedule, TrainResult, fit, steps_per_epoch

DEFAULTS = dict(family="lm", epochs=1, embed_dim=64, depth=2, num_heads=4, mlp_ratio=2.0, lr=3e-3,
                weight_decay=0.05, batch_size=32, max_vocab=5000, max_length=64)


def read_files(args) -> tuple[list[str], list[str]]:
    """The lines of ``--data`` and ``--eval-data`` (one-line errors for missing, empty or unreadable files)."""
    if not args.data:
        raise RobenchError("--task lm needs --data TRAIN_TOKENS_FILE (and --eval-data TEST_TOKENS_FILE)")
    if not args.eval_data:
        raise RobenchError("--task lm needs --eval-data TEST_TOKENS_FILE (the held-out text to measure perplexity on)")
    return read_lines(args.data, "training file"), read_lines(args.eval_data, "evaluation file")


def no_decay(name: str, p: torch.nn.Parameter) -> bool:
    """Biases, norms and the position embedding are not weight-decayed (the tied token embedding is)."""
    return p.ndim < 2 or "pos_embed" in name


def train_lm(args, opts: dict, out: Path | str, command: str,
             on_epoch: Callable[[EpochStats], None] | None) -> TrainResult:
    """Train ``args.variant`` as a language model on ``args.data`` (see :func:`robench.training.classifier.train`)."""
    from robench.lm.perplexity import perplexity

    device = torch.device(args.device)
    start = time.perf_counter()
    train_lines, test_lines = read_files(args)
    context = opts["max_length"]
    tok = LMTokenizer.build(train_lines, context, max_vocab=opts["max_vocab"])
    stream = tok.stream(train_lines)
    if args.train_tokens is not None:
        stream = stream[: args.train_tokens]
    n_seq = (len(stream) - 1) // context
    if n_seq < 1:
        raise RobenchError(f"the training stream has {len(stream)} tokens; it needs at least context + 1 = {context + 1}")
    seqs = stream[: n_seq * context + 1]
    cfg = ArchConfig(family="lm", variant=args.variant, num_classes=0, embed_dim=opts["embed_dim"], depth=opts["depth"],
                     num_heads=opts["num_heads"], mlp_ratio=opts["mlp_ratio"], vocab_size=len(tok), max_length=context,
                     **(args.arch_args or {}))
    torch.manual_seed(args.seed)
    net = build_model(cfg)
    card = Card(task=TASK, labels=[], architecture=cfg, preprocessing=tok.contract())
    model = LanguageModel(net, tok).to(device)
    bs, epochs = opts["batch_size"], opts["epochs"]
    warmup = max(1, epochs * steps_per_epoch(n_seq, bs) // 10)
    offsets = torch.arange(context)

    def batches(epoch: int, steps: list[torch.Tensor]):
        for step in steps:  # sequence i: inputs i*context .. (i+1)*context - 1, targets one token further
            idx = step[:, None] * context + offsets[None]
            yield seqs[idx].to(device), seqs[idx + 1].to(device)

    history = fit(model, net, n_seq, batches, Schedule(epochs, bs, opts["lr"], opts["weight_decay"], warmup),
                  args.seed, no_decay, on_epoch)
    res = perplexity(model, tok.stream(test_lines), context, device=device)
    net = net.cpu()
    out_path = Path(out) if str(out).endswith(".safetensors") else Path(str(out) + ".safetensors")
    card_file = card_path_for(out_path)  # the token files are found again from any directory
    card.training = {
        "dataset": str(args.data), **locate(str(args.data), card_file), "dataset_sha256": sha256_file(args.data), "split": "train", "n": int(n_seq * context),
        "unit": "tokens", "train_tokens": args.train_tokens, "seed": args.seed, "epochs": epochs,
        "context": context, "vocab": f"<unk>, <eos> and the {len(tok) - 2} most frequent training words",
        "optimizer": f"AdamW(lr={opts['lr']}, weight_decay={opts['weight_decay']}), cosine, {warmup} warmup steps",
        "batch_size": bs, "tied_embeddings": True,
        "command": command or f"robench train --task lm --data {args.data} --eval-data {args.eval_data} --variant {args.variant} --seed {args.seed}",
        "robench_version": __version__, "torch_version": torch.__version__, "threads": torch.get_num_threads(),
    }
    card.evaluation = {
        "dataset": str(args.eval_data), **locate(str(args.eval_data), card_file), "split": "test",
        "dataset_sha256": sha256_file(args.eval_data),
        "n": res.n, "unit": "tokens", "perplexity": round(res.ppl, 6), "stride": max(context // 2, 1),
    }
    digest = save_checkpoint(net, card, out)
    return TrainResult(out_path, card, digest, res.ppl, "perplexity", time.perf_counter() - start, history)
