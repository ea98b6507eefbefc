"""``robench train``: train one of the four variants on an embedded task -> checkpoint + card.

Deterministic on CPU: the same arguments give a bit-identical ``.safetensors`` file (seeded init,
seeded data order, deterministic algorithms). The test split is only used once, after the last
epoch, to measure the clean accuracy recorded in the card (no model selection on it).
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from robench import __version__
from robench.argspec import REQUIRED, option
from robench.checkpoint.card import Card, image_preprocessing
from robench.checkpoint.io import card_path_for, save_checkpoint
from robench.data.base import IMAGE, Dataset, stratified_sample
from robench.data.card_paths import locate
from robench.data.labels import align_labels
from robench.data.loader import Feed, default_workers
from robench.data.preprocess import Preprocessing
from robench.data.registry import load_dataset
from robench.data.tokenizer import WordTokenizer
from robench.device import resolve_threads
from robench.errors import RobenchError
from robench.engine.jobs import predict
from robench.models.loading import LoadedModel, wrap
from robench.models.config import ArchConfig, check_options, parse_arch_args, variant_parts
from robench.models.registry import build_model
from robench.training.loop import EpochStats, Schedule, TrainResult, fit, steps_per_epoch

# Per-task architecture and optimisation defaults (the zoo is trained with these).
FILE_SUFFIXES = (".tsv", ".csv", ".json", ".jsonl", ".parquet")  # text classification files
TASKS: dict[str, dict] = {
    "digits": dict(family="vit", epochs=40, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0,
                   lr=2e-3, weight_decay=0.05, batch_size=64, img_size=8, patch_size=4),
    "wordnet-topics": dict(family="text", epochs=20, embed_dim=48, depth=2, num_heads=4, mlp_ratio=2.0,
                           lr=2e-3, weight_decay=0.05, batch_size=64, max_vocab=2000, max_length=32),
}
# Defaults for an image source given as --task (an MNIST idx file or a DIR/CLASS/*.png tree, optionally
# sliced: SOURCE[a:b]); img_size comes from the images, patch_size defaults to a 4 x 4 patch grid.
IMAGE_SOURCE_DEFAULTS = dict(family="vit", epochs=10, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0,
                             lr=2e-3, weight_decay=0.05, batch_size=64, patch_size=None)


def source_kind(task: str) -> str | None:
    """``"text"`` for a .tsv/.csv table or a .json/.jsonl/.parquet file, ``"image"`` for an idx file
    or an image folder (either may be sliced, ``SOURCE[a:b]``), ``None`` for anything else (an
    embedded task name, ``lm``)."""
    from robench.data.images import is_idx_images
    from robench.data.registry import parse_slice

    sliced = parse_slice(task)
    base = sliced[0] if sliced else task
    if base.endswith(FILE_SUFFIXES):
        return "text"
    if is_idx_images(base) or (base not in TASKS and base != "lm" and Path(base).is_dir()):
        return "image"
    return None


@dataclass
class TrainArgs:
    """Arguments of ``robench train`` (shared by the CLI and the Python API)."""

    # per-task defaults: TASKS and IMAGE_SOURCE_DEFAULTS here, robench.lm.train.DEFAULTS; the help texts
    # state them (tests/test_cli.py checks that they do)
    task: str = option(REQUIRED, "--task", help="digits, wordnet-topics, a text file (.tsv/.csv table or .json/.jsonl/.parquet with a text and a label column), an MNIST idx file or image folder (slices: FILE[:8000]), or lm (a causal language model on --data).")
    variant: str = option(REQUIRED, "--variant", help="sa, bsa, grc, bsa-grc, alibi (SA + ALiBi) or rope (SA + RoPE).")
    seed: int = option(0, "--seed", help="Seed for initialisation, data order and sampling.")
    epochs: int | None = option(None, "--epochs", help="Training epochs (default per task: digits 40, wordnet-topics and text tables 20, image sources 10, lm 1).")
    embed_dim: int | None = option(None, "--embed-dim", help="Model width (default per task: digits 64, wordnet-topics and text tables 48, image sources 64, lm 64).")
    depth: int | None = option(None, "--depth", help="Transformer blocks (default per task: digits 4, wordnet-topics and text tables 2, image sources 4, lm 2).")
    num_heads: int | None = option(None, "--heads", help="Attention heads, must divide --embed-dim (default per task: digits 4, wordnet-topics and text tables 4, image sources 4, lm 4).")
    lr: float | None = option(None, "--lr", help="AdamW peak learning rate (default per task: digits 0.002, wordnet-topics and text tables 0.002, image sources 0.002, lm 0.003).")
    batch_size: int | None = option(None, "--batch-size", help="Training batch size (default per task: digits 64, wordnet-topics and text tables 64, image sources 64, lm 32).")
    device: str = option("cpu", "--device", help="cpu (bit-reproducible), cuda or auto.")
    # A text table (.tsv/.csv, see robench.data.files) as the task: --eval-data names its test file.
    eval_data: str | None = option(None, "--eval-data", help="Held-out .tsv/.csv when --task is a file; the test token file with --task lm.")
    train_examples: int | None = option(None, "--train-examples", help="Train on a seeded stratified sample of this size.")
    # --task lm: the training token file (--eval-data is the test file) and an optional token limit.
    data: str | None = option(None, "--data", help="--task lm: the training token file (one paragraph per line, e.g. wiki.valid.tokens).")
    train_tokens: int | None = option(None, "--train-tokens", help="--task lm: train on the first N tokens of --data only.")
    # Image tasks: side of a square patch in pixels (must divide the image side).
    patch_size: int | None = option(None, "--patch-size", help="Image tasks: patch side in pixels (default: a 4 x 4 grid).")
    # Image files (folders, image tables): the side images are resized and centre-cropped to
    # (default: the first training image's, which must then be square), decoding processes, and
    # timm's train augmentation (RandomResizedCrop, flip, colour jitter; off by default).
    img_size: int | None = option(None, "--img-size", help="Image files: resize and centre-crop every image to N x N (default: the first training image's size, if square).")
    workers: int | None = option(None, "--workers", help="Image files: decoding processes (default: half the CPU cores, at most 8; 0 = in process).")
    augment: bool = option(False, "--augment", help="Image files: timm's train augmentation (RandomResizedCrop, flip, colour jitter); off by default.")
    threads: int | None = option(None, "--threads", help="CPU threads (default: $ROBENCH_THREADS, else torch's: one per core, idle OpenMP threads sleeping); CPU training is bit-reproducible per thread count, recorded in the card.")
    # Text files: column names (default: detected), a --labels FILE fixing the label order; text
    # tasks (and lm): the vocabulary cap (words, [PAD] and [UNK] included) and the token limit.
    text_column: str | None = option(None, "--text-column", help="Text files: the text column (default: sentence, text, content or review).")
    label_column: str | None = option(None, "--label-column", help="Text files: the label column (default: label).")
    labels_file: str | None = option(None, "--labels", help="Text files: label names, one per line, fixing their order (default: 0..K-1 for integer labels, sorted names for strings).")
    vocab_size: int | None = option(None, "--vocab-size", help="Text tasks and lm: vocabulary cap, [PAD] and [UNK] included (default: 2000; lm 5000).")
    max_length: int | None = option(None, "--max-length", help="Text tasks and lm: tokens per text, longer ones truncated (default: 32; lm context 64).")
    # ArchConfig's design options (robench models --json lists them), recorded in the card
    arch_args: dict | None = option(None, "--arch-arg", help="key=value architecture option, e.g. bsa_range=dot (repeatable; `robench models --json` lists them).",
                                    cli_type=list[str], parse=parse_arch_args)

    @property
    def columns(self) -> dict[str, str | None]:
        """The table options of :func:`robench.data.registry.load_dataset`."""
        return {"text": self.text_column, "label": self.label_column, "labels": self.labels_file}

    @property
    def is_file_task(self) -> bool:
        return source_kind(self.task) is not None

    def resolved(self) -> dict:
        if self.task == "lm":
            from robench.lm.train import DEFAULTS

            if self.train_examples is not None:
                raise RobenchError("--train-examples is for classification tasks; use --train-tokens with --task lm")
            if self.train_tokens is not None and self.train_tokens < 2:
                raise RobenchError(f"--train-tokens must be >= 2, got {self.train_tokens}")
            defaults = DEFAULTS
        elif self.data is not None or self.train_tokens is not None:
            raise RobenchError("--data and --train-tokens are for --task lm (a classification file is given as --task FILE)")
        elif self.is_file_task:
            if not self.eval_data:
                raise RobenchError("training on a data file needs --eval-data PATH (the held-out file to measure accuracy "
                                   "on; an idx file can be split with slices: --task FILE[:8000] --eval-data FILE[8000:])")
            # text tables use the text family's defaults
            defaults = TASKS["wordnet-topics"] if source_kind(self.task) == "text" else IMAGE_SOURCE_DEFAULTS
        elif self.task not in TASKS:
            raise RobenchError(f"unknown task {self.task!r}; choose one of: {', '.join(TASKS)}, lm, a .tsv/.csv file, "
                               "an MNIST idx file or an image folder")
        else:
            defaults = TASKS[self.task]
        if self.patch_size is not None and (self.patch_size < 1 or "patch_size" not in defaults):
            raise RobenchError(f"--patch-size is for image tasks and must be >= 1, got {self.patch_size} for task {self.task!r}")
        for flag, value in (("--vocab-size", self.vocab_size), ("--max-length", self.max_length)):
            if value is not None and "max_vocab" not in defaults:
                raise RobenchError(f"{flag} is for text tasks and --task lm, not for task {self.task!r}")
        if self.vocab_size is not None and self.vocab_size < 4:
            raise RobenchError(f"--vocab-size must be >= 4 ([PAD], [UNK] and at least two words), got {self.vocab_size}")
        if self.max_length is not None and self.max_length < 1:
            raise RobenchError(f"--max-length must be >= 1 token, got {self.max_length}")
        table = [f for f, v in (("--text-column", self.text_column), ("--label-column", self.label_column),
                                ("--labels", self.labels_file)) if v is not None]
        if table and source_kind(self.task) != "text":
            raise RobenchError(f"{', '.join(table)} {'is' if len(table) == 1 else 'are'} for text files (--task "
                               f"FILE.tsv/.csv/.jsonl/.parquet), not for task {self.task!r}")
        variant_parts(self.variant)
        check_options(self.variant, self.arch_args or {})
        if self.train_examples is not None and self.train_examples < 1:
            raise RobenchError(f"--train-examples must be >= 1, got {self.train_examples}")
        opts = dict(defaults)
        for k, v in asdict(self).items():
            if k in opts and v is not None:
                opts[k] = v
        if self.vocab_size is not None:
            opts["max_vocab"] = self.vocab_size
        for k in ("epochs", "embed_dim", "depth", "num_heads", "batch_size"):
            if int(opts[k]) < 1:
                raise RobenchError(f"--{k.replace('_', '-')} must be >= 1, got {opts[k]}")
        if opts["embed_dim"] % opts["num_heads"]:  # here, not in the model: before any data is read
            fits = [h for h in range(1, min(opts["embed_dim"], 16) + 1) if opts["embed_dim"] % h == 0]
            raise RobenchError(f"--heads {opts['num_heads']} must divide the width --embed-dim {opts['embed_dim']}; "
                               f"choose one of {', '.join(map(str, fits))}")
        if opts.get("img_size") and opts["img_size"] % opts["patch_size"]:
            raise RobenchError(f"--patch-size must divide the image side {opts['img_size']}, got {opts['patch_size']}")
        if not opts["lr"] > 0:
            raise RobenchError(f"--lr must be > 0, got {opts['lr']}")
        return opts


def no_decay(name: str, p: torch.nn.Parameter) -> bool:
    """Biases, norms, position embeddings and the CLS token are not weight-decayed."""
    return not (p.ndim >= 2 and "pos_embed" not in name and "cls_token" not in name)


def image_geometry(train_ds: Dataset, test_ds: Dataset, patch_size: int | None, img_size: int | None) -> dict[str, int]:
    """``img_size``/``patch_size`` (patches: a 4 x 4 grid unless given). In-memory images must be
    square and of one size; image files are resized to ``img_size`` (default: the first training
    image's size, when square)."""
    if isinstance(train_ds.inputs, torch.Tensor):
        h, w = train_ds.inputs.shape[-2:]
        tw = tuple(test_ds.inputs.shape[-2:]) if isinstance(test_ds.inputs, torch.Tensor) else (h, w)
        if h != w or tw != (h, w):
            raise RobenchError(f"training needs square images of one size; got {h}x{w} (train) and "
                               f"{tw[0]}x{tw[1]} (evaluation)")
        if img_size is not None and img_size != h:
            raise RobenchError(f"--img-size {img_size}: these in-memory images are {h}x{w}; --img-size resizes image files only")
    elif img_size is not None:
        h = img_size
    else:
        first = train_ds.inputs.load(0, "RGB")
        if first.width != first.height:
            raise RobenchError(f"the first training image ({train_ds.inputs.where(0)}) is {first.width}x{first.height}; "
                               "pass --img-size N to resize and centre-crop every image to N x N")
        h = first.width
    patch = patch_size or (h // 4 if h % 4 == 0 else None)
    if not patch or h % patch:
        raise RobenchError(f"--patch-size must divide the image side {h}; pass one (e.g. --patch-size {h})")
    return {"img_size": int(h), "patch_size": patch}


def image_channels(ds: Dataset) -> int:
    """1 for grayscale images, else 3 (file-backed sources: judged by the first image)."""
    if isinstance(ds.inputs, torch.Tensor):
        return int(ds.inputs.shape[1])
    from PIL import Image

    path = ds.inputs.where(0)
    try:
        with Image.open(path) as im:
            return 1 if im.mode in ("L", "1", "I;16", "I", "LA") else 3
    except OSError:
        return 3  # an unreadable first file is reported by name when it is decoded


def channel_stats(ds: Dataset, feed: Feed, channels: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the training images (one streamed pass for image files)."""
    if isinstance(ds.inputs, torch.Tensor):
        x = ds.inputs
        return (x.transpose(0, 1).reshape(channels, -1).mean(1).tolist(), x.transpose(0, 1).reshape(channels, -1).std(1).tolist())
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    count = 0
    for batch in feed.batches(ds, [range(s, min(s + 256, len(ds))) for s in range(0, len(ds), 256)]):
        x = batch.x.double().transpose(0, 1).reshape(channels, -1)
        total += x.sum(1).cpu()
        squares += (x * x).sum(1).cpu()
        count += x.shape[1]
    mean = total / count
    std = ((squares - count * mean * mean) / max(1, count - 1)).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()


def check_trainable(ds: Dataset) -> None:
    """Refuse a training set too small to learn from (one example, one class) before any training."""
    classes = sorted(set(ds.targets.tolist()))
    if len(classes) < 2:
        held = f"only class {ds.labels[classes[0]]!r}" if classes else "no classes"
        raise RobenchError(f"too few examples to train on: {ds.name} has {len(ds)} example(s) of {held}; "
                           "training needs examples of at least two classes")


def check_vocabulary(tokenizer: WordTokenizer, ds: Dataset) -> None:
    """A text model needs words to learn from: the vocabulary keeps words seen at least twice."""
    words = len(tokenizer) - 2  # [PAD], [UNK]
    if words < 2:
        raise RobenchError(f"too few examples to train on: the {len(ds)} training texts of {ds.name} have {words} "
                           "word(s) seen at least twice (the vocabulary needs two or more); give more training texts")


def train(
    args: TrainArgs,
    out: Path | str,
    command: str = "",
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_start: Callable[[], None] | None = None,
) -> TrainResult:
    """Train ``args.variant`` on ``args.task`` and write ``out`` (.safetensors) + its card.

    Every input is checked before ``on_start()`` is called, right before the first epoch (the CLI
    shows its progress bar from there, so a bad input is one error line, not a bar and a line).
    """
    opts = args.resolved()
    threads = resolve_threads(args.threads)  # CPU training is bit-reproducible per thread count: recorded in the card
    if args.task == "lm":  # causal language model on a token file: robench.lm.train
        from robench.lm.train import train_lm

        if on_start:
            on_start()
        return train_lm(args, opts, out, command, on_epoch)
    device = torch.device(args.device)
    start = time.perf_counter()
    train_ds = load_dataset(args.task, "train", args.columns)
    if args.train_examples is not None:
        train_ds = train_ds.subset(stratified_sample(train_ds.targets, args.train_examples, args.seed))
    check_trainable(train_ds)
    # the evaluation file may lack some classes; its labels are mapped into the training set's by name
    test_ds = align_labels(load_dataset(args.eval_data or args.task, "test", args.columns), train_ds.labels,
                           f"the training set {args.task}")
    arch_common = dict(
        variant=args.variant, num_classes=len(train_ds.labels), embed_dim=opts["embed_dim"],
        depth=opts["depth"], num_heads=opts["num_heads"], mlp_ratio=opts["mlp_ratio"], **(args.arch_args or {}),
    )
    tokenizer = None
    feed = train_feed = None
    if args.augment and not (train_ds.task == IMAGE and train_ds.lazy):
        raise RobenchError("--augment applies timm's train transform to image files (a folder or an image table); "
                           f"{args.task} holds in-memory images or text")
    if train_ds.task == IMAGE:
        c = image_channels(train_ds)
        if "img_size" not in opts:  # an image source: the architecture follows the images
            opts.update(image_geometry(train_ds, test_ds, opts["patch_size"], args.img_size))
        workers = default_workers() if args.workers is None else args.workers
        geometry = Preprocessing(channels=c, size=(opts["img_size"],) * 2)  # crop_pct 1: resize, centre crop
        feed = Feed(geometry, device, workers if train_ds.lazy or test_ds.lazy else 0)
        train_feed = Feed(geometry, device, feed.workers, augment=args.augment)
        mean, std = channel_stats(train_ds, feed, c)
        cfg = ArchConfig(family=opts["family"], img_size=opts["img_size"], patch_size=opts["patch_size"], in_chans=c, **arch_common)
        files = train_ds.lazy or test_ds.lazy
        pre = image_preprocessing(c, opts["img_size"], [round(m, 6) for m in mean], [round(s, 6) for s in std],
                                  **(dict(crop_pct=1.0, crop_mode="center", interpolation="bilinear") if files else {}))
    else:
        tokenizer = WordTokenizer.build(train_ds.inputs, opts["max_length"], max_vocab=opts["max_vocab"])
        check_vocabulary(tokenizer, train_ds)
        cfg = ArchConfig(family=opts["family"], vocab_size=len(tokenizer), max_length=opts["max_length"], **arch_common)
        pre = tokenizer.contract()

    torch.manual_seed(args.seed)
    net = build_model(cfg)
    card = Card(task=train_ds.task, labels=list(train_ds.labels), architecture=cfg, preprocessing=pre)
    model = wrap(net, card).to(device)

    n, bs, epochs = len(train_ds), opts["batch_size"], opts["epochs"]
    schedule = Schedule(epochs, bs, opts["lr"], opts["weight_decay"], warmup=steps_per_epoch(n, bs))  # 1 warmup epoch

    def batches(epoch: int, steps: list[torch.Tensor]):
        plan = [idx.tolist() for idx in steps]
        if train_feed is not None:  # images: sliced in memory, or decoded by worker processes as the model trains
            random.seed(args.seed * 1_000 + epoch)  # --augment draws (in-process decoding): reproducible
            return ((b.x, b.y) for b in train_feed.batches(train_ds, plan, seed=args.seed * 1_000 + epoch))
        return ((tokenizer([train_ds.inputs[i] for i in idx]).to(device), train_ds.targets[idx].to(device)) for idx in plan)

    if on_start:
        on_start()
    history = fit(model, net, n, batches, schedule, args.seed, no_decay, on_epoch)

    preds = predict(LoadedModel(name=str(out), module=model, card=card, sha256=""), test_ds, 256, feed)
    test_acc = float((preds == test_ds.targets).sum()) / len(test_ds)
    net = net.cpu()
    out_path = Path(out) if str(out).endswith(".safetensors") else Path(str(out) + ".safetensors")
    card_file = card_path_for(out_path)
    card.training = {
        "dataset": args.task, **locate(args.task, card_file), "dataset_sha256": train_ds.identity(), "split": "train",
        "n": len(train_ds), "train_examples": args.train_examples,
        "seed": args.seed, "epochs": epochs, "optimizer": f"AdamW(lr={opts['lr']}, weight_decay={opts['weight_decay']}), cosine, 1 warmup epoch",
        "batch_size": bs, "command": command or f"robench train --task {args.task} --variant {args.variant} --seed {args.seed}",
        "robench_version": __version__, "torch_version": torch.__version__, "threads": threads,
    }
    if tokenizer is not None and (args.is_file_task or args.vocab_size is not None or args.max_length is not None):
        # what read the text files, so that the card alone says how to rebuild the model (the zoo's
        # wordnet-topics cards predate these fields: their defaults are max_vocab 2000, max_length 32)
        card.training.update({"text_column": args.text_column, "label_column": args.label_column,
                              "labels_file": args.labels_file, "vocab_size": opts["max_vocab"],
                              "max_length": opts["max_length"]})
    eval_name = args.eval_data or args.task
    card.evaluation = {
        "dataset": eval_name, **locate(eval_name, card_file), "split": "test", "dataset_sha256": test_ds.identity(),
        "n": len(test_ds), "clean_accuracy": test_acc,
    }
    digest = save_checkpoint(net, card, out)
    return TrainResult(out_path, card, digest, test_acc, "accuracy", time.perf_counter() - start, history)
