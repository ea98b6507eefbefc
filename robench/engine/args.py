"""The arguments of the evaluating commands, shared by the CLI and the Python API (TextAttack keeps its
arguments dataclasses in one module too).

Every option is declared once, here, with :func:`robench.argspec.option`: its default, its flags and
its help text; ``robench.cli.options`` derives the Typer options from these fields. Torch-free, since
``robench --help`` builds every command's options from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from robench.argspec import REQUIRED, option
from robench.engine.distributed import parse_shard
from robench.errors import RobenchError, check_seed

if TYPE_CHECKING:
    from robench.models.loading import LoadedModel

BASELINE_HELP = "Model to compare against: paired difference + exact McNemar p."


def _model_args(items: list[str]) -> dict[str, Any]:
    from robench.models.timm_loader import parse_model_args

    return parse_model_args(items)


@dataclass(kw_only=True)
class RunArgs:
    """Options every evaluating command shares (evaluate, attack, curve)."""

    dataset: str | None = option(None, "--dataset", help="Dataset name or source (default: the model card's).")
    split: str = option("test", "--split", help="Dataset split.")
    num_examples: int | None = option(None, ("-n", "--num-examples"), help="Seeded stratified sample size (default: whole split).")
    batch_size: int = option(256, "--batch-size", help="Examples per forward pass and per attack batch (batches are seeded by position: results do not depend on it for deterministic attacks; a larger one is faster on a GPU and needs more memory).")
    device: str = option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
    amp: str = option("auto", "--amp", help="Autocast for attack forward passes: auto (bf16 on CUDA, off on CPU), off, bf16, fp16; recorded predictions are fp32.")
    seed: int = option(0, "--seed", help="Seed for sampling and attacks.")
    out: Path | None = option(None, "--out", help="Directory for per-example JSONL records.")
    # overrides the query_budget of every threat that has one
    query_budget: int | None = option(None, "--query-budget", help="Max model queries per example for text threats that take a budget.")
    # column names of table datasets (default: detected)
    text_column: str | None = option(None, "--text-column", help="Text column of a table dataset.")
    label_column: str | None = option(None, "--label-column", help="Label column of a table dataset.")
    image_column: str | None = option(None, "--image-column", help="Image column of a Hugging Face dataset.")
    labels_file: str | None = option(None, "--labels", help="Label names of a table/JSON dataset, one per line, fixing their order (default: 0..K-1 for integer labels, sorted names for strings).")
    arch: str | None = option(None, "--arch", help="Card (.json) or zoo name giving the architecture of a plain state dict.")
    model_args: dict | None = option(None, "--model-arg", help="key=value for timm.create_model (repeatable).",
                                     cli_type=list[str], parse=_model_args)
    # override the preprocessing contract of timm: models
    mean: list[float] | None = option(None, "--mean", help="Per-channel mean overriding a timm model's contract (repeatable).")
    std: list[float] | None = option(None, "--std", help="Per-channel std overriding a timm model's contract (repeatable).")
    use_ema: bool = option(False, "--use-ema", help="Evaluate a training checkpoint's EMA weights (state_dict_ema of a timm train.py --model-ema checkpoint) instead of its state_dict.")
    expect_accuracy: float | None = option(None, "--expect-accuracy", help="Clean accuracy the preprocessing probe should expect.")
    shard: str | None = option(None, "--shard", help="i/n: evaluate shard i of n (0-based) into --out DIR/shard-i-of-n; combine with `robench merge DIR`.")
    # Image files (folders, image tables, Arrow datasets, the ImageNet family) are decoded on demand:
    workers: int | None = option(None, "--workers", help="Processes decoding image files (folders, image tables, Arrow datasets); default: half the CPU cores, at most 8; 0 decodes in the main process.")
    img_size: int | None = option(None, "--img-size", help="Input size overriding the model's (timm data config or card); image files are resized and cropped to it.")
    crop_pct: float | None = option(None, "--crop-pct", help="Centre-crop fraction overriding the model's: resize to size/crop_pct, crop size (timm's eval transform).")
    interpolation: str | None = option(None, "--interpolation", help="Resize interpolation overriding the model's: bilinear, bicubic, nearest, lanczos, box, hamming.")
    threads: int | None = option(None, "--threads", help="CPU threads for the model and attacks (default: $ROBENCH_THREADS, else torch's: one per core, idle OpenMP threads sleeping; shown in the run header, recorded in --out's run.json).")
    skip_unreadable: bool = option(False, "--skip-unreadable", help="Leave images that cannot be decoded out of the run (listed in --out DIR/run.json and warned about) instead of stopping.")

    @property
    def columns(self) -> dict[str, str | None]:
        return {"text": self.text_column, "label": self.label_column, "image": self.image_column,
                "labels": None if self.labels_file is None else str(self.labels_file)}

    def __post_init__(self) -> None:
        # both import torch (robench.data fills its registry at import): not at --help time
        from robench.data.preprocess import INTERPOLATIONS
        from robench.device import AMP_CHOICES

        if self.amp not in AMP_CHOICES:
            raise RobenchError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {self.amp!r}")
        if self.query_budget is not None and self.query_budget < 1:
            raise RobenchError(f"--query-budget must be >= 1, got {self.query_budget}")
        if self.batch_size < 1:
            raise RobenchError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.num_examples is not None and self.num_examples < 1:
            raise RobenchError(f"-n/--num-examples must be >= 1, got {self.num_examples}")
        if self.shard is not None:
            parse_shard(self.shard)
        if self.threads is not None and self.threads < 1:
            raise RobenchError(f"--threads must be >= 1, got {self.threads}")
        if self.workers is not None and self.workers < 0:
            raise RobenchError(f"--workers must be >= 0 (0 decodes images in the main process), got {self.workers}")
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise RobenchError(f"--crop-pct must be in (0, 1], got {self.crop_pct}")
        if self.img_size is not None and self.img_size < 1:
            raise RobenchError(f"--img-size must be >= 1, got {self.img_size}")
        if self.interpolation is not None and self.interpolation not in INTERPOLATIONS:
            raise RobenchError(f"--interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        check_seed(self.seed)
        if self.expect_accuracy is not None and not 0 <= self.expect_accuracy <= 1:
            raise RobenchError(f"--expect-accuracy must be a clean accuracy in [0, 1] (0.9 = 90%), got {self.expect_accuracy}")
        for flag, values in (("--mean", self.mean), ("--std", self.std)):
            if values and not all(math.isfinite(v) and (flag == "--mean" or v > 0) for v in values):
                raise RobenchError(f"{flag} values must be finite numbers{' > 0' if flag == '--std' else ''}, got {values}")


@dataclass(kw_only=True)
class EvaluateArgs(RunArgs):
    """Arguments of ``robench evaluate`` (shared by the CLI and the Python API)."""

    # LoadedModel: from Python only
    models: Sequence[str | LoadedModel] = option((), None, cli_type=list[str],
                                                 help="Zoo names or checkpoint paths (default: the whole zoo).")
    suite: str = option("default", "--suite", help="Threat suite: a name in attacks/ (default, paper, clean) or a .toml path.")
    threats: Sequence[str] = option((), "--threat", cli_type=list[str], help="Ad-hoc threat spec (repeatable); replaces the suite.")
    baseline: str | None = option(None, "--baseline", help=BASELINE_HELP)
    lm_context: int | None = option(None, "--lm-context", help="Language models: the sliding window's context L in tokens (stride L/2), at most the model's own (default: the model's: its card's, or an hf: model's n_positions/max_position_embeddings).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lm_context is not None and self.lm_context < 1:
            raise RobenchError(f"--lm-context must be >= 1 (tokens), got {self.lm_context}")


@dataclass(kw_only=True)
class AttackArgs(RunArgs):
    """Arguments of ``robench attack`` (shared by the CLI and the Python API)."""

    model: str = option(REQUIRED, None, help="Zoo name or checkpoint path.")
    threat: str = option(REQUIRED, "--threat", help="Threat spec, e.g. pgd:eps=8/255,steps=20 (see `robench threats`).")
    save_adv: Path | None = option(None, "--save-adv", help="Write adversarial images, labels, predictions (safetensors).")


@dataclass(kw_only=True)
class CurveArgs(EvaluateArgs):
    """Arguments of ``robench curve``: a base threat and ``key=v1,v2,...``."""

    models: Sequence[str | LoadedModel] = option(REQUIRED, None, cli_type=list[str], help="Zoo names or checkpoint paths.")
    threat: str = option(REQUIRED, "--threat", help="Base threat spec, e.g. pgd or corruption:name=fog.")
    sweep: str = option(REQUIRED, "--sweep", help="key=v1,v2,... e.g. eps=0,1/255,2/255,4/255 or severity=0,1,2,3,4,5.")


@dataclass(kw_only=True)
class MergeArgs:
    """Arguments of ``robench merge`` (shared by the CLI and the Python API)."""

    dirs: Sequence[Path] = option(REQUIRED, None, cli_type=list[Path],
                                  help="--out DIR of the shards (holding shard-i-of-n folders), or shard folders.")
    out: Path | None = option(None, "--out", help="Write the merged per-example records and rows.json here.")
    baseline: str | None = option(None, "--baseline", help=BASELINE_HELP)


EXPORT_TARGETS = ("timm", "hf")


@dataclass(kw_only=True)
class ExportArgs:
    """Arguments of ``robench export`` (shared by the CLI and the Python API)."""

    checkpoint: str = option(REQUIRED, None, help="Zoo name or checkpoint path of a robench image classifier (ViT).")
    out: Path = option(REQUIRED, None, help="Folder to write (created; must be absent or empty unless --force).")
    to: str = option(REQUIRED, "--to",
                     help="timm: a timm hub-layout folder (config.json + model.safetensors; timm:DIR, local-dir:DIR); "
                          "hf: the same plus a README.md model card, the folder push_to_hub uploads (hf-hub:ID).")
    arch: str | None = option(None, "--arch", help="Card (.json) or zoo name giving the architecture of a plain state dict.")
    force: bool = option(False, "--force", help="Replace the folder when it exists and is not empty.")

    def __post_init__(self) -> None:
        if self.to not in EXPORT_TARGETS:
            raise RobenchError(f"--to must be one of {', '.join(EXPORT_TARGETS)}, got {self.to!r}")
        self.out = Path(self.out)
