"""What one ``robench evaluate`` run evaluates: its models (each once, the ``--baseline`` among
them) and the threats each modality gets (the suite's, or the ``--threat`` list), all checked
before any model work starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from robench.data.base import LM as LM_TASK
from robench.engine.jobs import load_spec
from robench.errors import RobenchError
from robench.engine.modalities import MODALITIES as modality_table, modality_for
from robench.models.loading import LoadedModel, list_zoo
from robench.threats.base import Threat
from robench.threats.registry import build_threat
from robench.threats.suite import load_suite

if TYPE_CHECKING:
    from robench.engine.args import EvaluateArgs, RunArgs

MODALITIES = tuple(m.name for m in modality_table.values())  # the threat modalities: "image", "text"


def modality_of(model: LoadedModel) -> str:
    """The modality of the threats a classifier takes (its task's entry in the modality table)."""
    return modality_for(model).name


def apply_budget(threat: Threat, args: RunArgs) -> Threat:
    """``threat`` with ``--query-budget`` in place of its own, if given."""
    return threat if args.query_budget is None else threat.with_values(query_budget=args.query_budget)


def resolve_threats(args: EvaluateArgs) -> dict[str, list[Threat]]:
    """Threats per modality: the ad-hoc ``--threat`` list if given, else the suite's."""
    if args.threats:
        out: dict[str, list[Threat]] = {m: [] for m in MODALITIES}
        for spec in args.threats:
            t = apply_budget(build_threat(spec), args)
            if t not in out[t.modality]:
                out[t.modality].append(t)
        return out
    suite = load_suite(args.suite)
    return {m: [apply_budget(t, args) for t in suite.for_modality(m)] for m in MODALITIES}


def distinct_models(models: list[LoadedModel], appended_baseline: bool = False) -> list[LoadedModel]:
    """Each model once: rows, records and pairing are keyed by model name, so a name given twice
    (the same spec twice, or a zoo name beside its checkpoint path) is refused rather than silently
    de-duplicated (the command would not be doing what it says). The one exception is a
    ``--baseline`` appended to the list that is an evaluated model named another way (same name and
    weights): it is that model."""
    if appended_baseline and any(m.name == models[-1].name and m.sha256 == models[-1].sha256 for m in models[:-1]):
        models = models[:-1]
    seen: dict[str, LoadedModel] = {}
    for m in models:
        if m.name in seen:
            first = seen[m.name]
            same = "the same checkpoint" if first.sha256 == m.sha256 else "two different checkpoints with one name"
            raise RobenchError(f"model {m.name!r} is given twice ({same}: {first.path or first.name} and {m.path or m.name}); "
                               "give each model once (rows are keyed by model name)")
        seen[m.name] = m
    return models


def model_specs(args: EvaluateArgs) -> tuple[list, bool]:
    """The MODEL specs of the run (default: the whole zoo) and whether ``--baseline`` was appended
    to them (it is not among the given models)."""
    specs = list(args.models) or list_zoo()
    if not specs:
        raise RobenchError("no models given and the zoo is empty; pass a checkpoint path or set ROBENCH_ZOO")
    appended = args.baseline is not None and args.baseline not in [getattr(s, "name", s) for s in specs]
    return specs + [args.baseline] if appended else specs, appended


def load_models(args: EvaluateArgs, specs: list, appended: bool, device: torch.device,
                datasets: dict) -> tuple[list[LoadedModel], str | None]:
    """The run's models, each once, and the baseline's model name (None without ``--baseline``)."""
    models = [s if isinstance(s, LoadedModel) else load_spec(s, args, device, datasets) for s in specs]  # fail fast
    base_name = None if args.baseline is None else models[[getattr(s, "name", s) for s in specs].index(args.baseline)].name
    return distinct_models(models, appended_baseline=appended), base_name


def is_lm_run(models: list[LoadedModel]) -> bool:
    """True for a run of language models (perplexity rows, robench.lm.perplexity); a mix with
    classifiers is refused."""
    lms = [m.task == LM_TASK for m in models]
    if any(lms) and not all(lms):
        raise RobenchError("language models and classifiers cannot be evaluated in one run; evaluate them separately")
    return any(lms)


def check_threats(args: EvaluateArgs, threats: dict[str, list[Threat]], models: list[LoadedModel]) -> None:
    """Every ``--threat`` applies to some model, and every threat the models get can run (a missing
    download or resource fails now, not after the clean passes)."""
    modalities = {modality_of(m) for m in models}
    if args.threats:
        for t in [t for ts in threats.values() for t in ts]:
            if t.modality not in modalities:
                raise RobenchError(f"threat {t.name!r} is a {t.modality} threat but no evaluated model is a {t.modality} model")
    for t in dict.fromkeys(t for m in MODALITIES if m in modalities for t in threats[m]):
        t.check_available()
