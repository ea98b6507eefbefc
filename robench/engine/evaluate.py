"""``robench.engine.evaluate``: every model x every threat -> one :class:`ResultRow` each.

One clean pass per model (threat ``none``), then each threat of the suite (or the ``--threat``
list) for the model's modality, attacking only the examples still correctly classified. Every
summary number is computed from the per-example records, which ``--out DIR`` writes as JSONL.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator

import torch

from robench import __version__
from robench.data.base import LM as LM_TASK, Dataset
from robench.device import amp_name, resolve_device, resolve_threads
from robench.engine.args import EvaluateArgs, RunArgs
from robench.engine.distributed import Shard, gather_max, gather_records, init_from_env, owned_positions, parse_shard
from robench.errors import RobenchError
from robench.engine.jobs import Job, load_spec, prepare, run_clean
from robench.models.loading import LoadedModel, list_zoo
from robench.checks.probe import probe_preprocessing
from robench.results.records import Record, summarize
from robench.results.schema import ResultRow
from robench.results.stats import mcnemar_exact, wilson_interval
from robench.results.store import RecordStore, record_key
from robench.engine.runner import attack_records, check_modality
from robench.checks.sanity import Flag, attach, model_flags, row_flags
from robench.threats.base import Threat
from robench.threats.registry import build_threat
from robench.threats.suite import load_suite

CLEAN = "none"
ResultKey = tuple[str, str, str, str]  # (model, dataset, split, threat spec): what one list of records is about


def modality_of(model: LoadedModel) -> str:
    return "image" if model.task == "image-classification" else "text"


def apply_budget(threat: Threat, args: RunArgs) -> Threat:
    return threat if args.query_budget is None else threat.with_values(query_budget=args.query_budget)


def resolve_threats(args: EvaluateArgs) -> dict[str, list[Threat]]:
    """Threats per modality: the ad-hoc ``--threat`` list if given, else the suite's."""
    if args.threats:
        out: dict[str, list[Threat]] = {"image": [], "text": []}
        for spec in args.threats:
            t = apply_budget(build_threat(spec), args)
            if t not in out[t.modality]:
                out[t.modality].append(t)
        return out
    suite = load_suite(args.suite)
    return {m: [apply_budget(t, args) for t in suite.for_modality(m)] for m in ("image", "text")}


def summary_fields(records: list[Record]) -> dict:
    """The summary columns of a row, computed from its records."""
    if not records:  # a --shard process holding no example of this model (all in other shards' batches)
        return dict(n=0, clean_acc=0.0, attacked_acc=0.0, attacked_ci_low=0.0, attacked_ci_high=1.0,
                    attack_success_rate=0.0, mean_perturbation=0.0, mean_queries=0.0)
    s = summarize(records)
    lo, hi = wilson_interval(s.robust, s.n)
    return dict(n=s.n, clean_acc=s.clean_acc, attacked_acc=s.attacked_acc, attacked_ci_low=lo, attacked_ci_high=hi,
                attack_success_rate=s.attack_success_rate, mean_perturbation=s.mean_perturbation,
                mean_queries=s.mean_queries,
                clean_top5=None if s.clean_top5 is None else s.clean_top5 / s.n,
                attacked_top5=None if s.robust_top5 is None else s.robust_top5 / s.n)


def make_row(job: Job, threat: str, records: list[Record], unit: str, seconds: float, seed: int,
             device: torch.device) -> ResultRow:
    """Summarise records into the result schema."""
    model, ds = job.model, job.ds
    row = ResultRow(
        model=model.name, checkpoint_sha256=model.sha256, task=model.task, dataset=ds.name, split=ds.split,
        threat=threat, perturbation_unit=unit, seconds=seconds, seed=seed, device=str(device),
        robench_version=__version__, preprocessing=job.preprocessing, dataset_sha256=ds.identity(),
        **summary_fields(records),
    )
    if threat == CLEAN:  # nothing attacked: "attacked" top-5 is the clean top-5 (robust top-5 would be top-1)
        row.attacked_top5 = row.clean_top5
    return row


def row_key(row: ResultRow) -> ResultKey:
    return (row.model, row.dataset, row.split, row.threat)


def set_pooled_n(row: ResultRow, n: int) -> None:
    """A pooled row (``corruption:name=all``) is about ``n`` examples, not its ``n x parts`` records."""
    row.n = n
    row.attacked_ci_low, row.attacked_ci_high = (round(v, 6) for v in wilson_interval(round(row.attacked_acc * n), n))


def relative_mce(results: dict[ResultKey, list[Record]], row: ResultRow, baseline: str, parts: list[Threat]) -> float | None:
    """Mean corruption error relative to the baseline (Hendrycks & Dietterich 2019, with the
    baseline in AlexNet's place): mean over corruptions of sum_s err(model) / sum_s err(baseline)."""
    errs: dict[str, list[float]] = {}
    for part in parts:
        mine = summarize(results[(row.model, row.dataset, row.split, part.spec)]).attacked_acc
        base = summarize(results[(baseline, row.dataset, row.split, part.spec)]).attacked_acc
        e = errs.setdefault(part.values["name"], [0.0, 0.0])
        e[0] += 1 - mine
        e[1] += 1 - base
    if any(b == 0 for _, b in errs.values()):
        return None  # the baseline never errs on some corruption: relative error undefined
    return round(sum(m / b for m, b in errs.values()) / len(errs), 6)


def add_baseline(rows: list[ResultRow], results: dict[ResultKey, list[Record]], baseline: str) -> None:
    """Paired difference to the baseline model and an exact McNemar p-value, per (model, data, threat),
    computed on the same examples (same dataset, split, sample)."""
    base_rows = {(r.dataset, r.split, r.threat): r for r in rows if r.model == baseline}
    if not base_rows:
        raise RobenchError(f"--baseline {baseline!r} is not one of the evaluated models")
    for r in rows:
        b = base_rows.get((r.dataset, r.split, r.threat))
        if b is None or r.model == baseline or row_key(r) not in results:
            continue  # rows without records of their own (ImageNet-C summaries) are not paired
        mine, theirs = results[row_key(r)], results[row_key(b)]
        if [x.id for x in mine] != [x.id for x in theirs]:  # pooled rows compare example-by-example too
            raise RobenchError(f"cannot pair {r.model} with baseline {baseline}: they were evaluated on different examples")
        only_base = sum(t.robust and not m.robust for m, t in zip(mine, theirs))
        only_mine = sum(m.robust and not t.robust for m, t in zip(mine, theirs))
        r.baseline = baseline
        r.delta_vs_baseline = round((only_mine - only_base) / len(mine), 6)  # = attacked_acc - baseline's
        parts = build_threat(r.threat).expand() if r.threat != CLEAN else []
        if len(parts) > 1:
            # pooled rows: the 75 outcomes of one image are not independent pairs, so no McNemar test
            r.mce = relative_mce(results, r, baseline, parts)
        else:
            # 6 significant digits, as ResultRow keeps p-values (set after the row was built, so rounded here)
            r.mcnemar_p = float(f"{mcnemar_exact(only_mine, only_base):.6g}")


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


def run_config(command: str, args: RunArgs, jobs: list[Job], threats: list[str], device: torch.device,
               shard: Shard | None = None) -> dict:
    """Everything that changes the records of a run: what ``--out`` resumes (and merges) must match it."""
    data = []
    for j in jobs:
        entry = [j.ds.name, j.ds.split, j.ds.identity(), len(j.ds)]
        if j.preprocessing:  # file-backed images: what they go through is part of the data
            entry.append(j.preprocessing)
        data.append(entry)
    return {
        "shard": [shard.index, shard.count] if shard else None,
        "command": command,
        "models": [[j.model.name, j.model.sha256] for j in jobs],
        "data": data,
        "num_examples": args.num_examples, "seed": args.seed, "batch_size": args.batch_size,
        "query_budget": args.query_budget, "threats": threats, "device": device.type, "amp": amp_name(args.amp, device),
        "robench_version": __version__,
    }


def open_store(args: RunArgs, shard: Shard | None, config: dict) -> RecordStore:
    """The run's records store, with its CPU threads noted in run.json (outside the config hash: a
    resume or a merge on a machine with another core count still matches)."""
    store = RecordStore(shard_out(args, shard), config)
    store.annotate("threads", torch.get_num_threads())
    return store


def resolve_shard(args: RunArgs, device: torch.device) -> tuple[Shard | None, torch.device]:
    """This process's shard: a torchrun rank, ``--shard i/n``, or None (the whole run)."""
    shard, device = init_from_env(device)
    if shard is not None and args.shard:
        raise RobenchError("--shard and torchrun both split the run; use one of them")
    if args.shard:
        shard = parse_shard(args.shard)
        if args.out is None:
            raise RobenchError("--shard needs --out DIR: `robench merge DIR` combines the shards' records from there")
    return shard, device


def shard_out(args: RunArgs, shard: Shard | None) -> Path | None:
    return args.out / shard.name if shard is not None and args.out is not None else args.out


def owned_clean(clean: list[Record], shard: Shard | None, batch_size: int) -> list[Record]:
    """The clean records this shard keeps (all of them without sharding): those of the examples its
    attack records cover (:func:`robench.engine.distributed.owned_positions`), so every row of a shard is
    about the same examples (a clean n of 25 beside an attack over 49 compared different sets)."""
    if shard is None:
        return clean
    owned = owned_positions(shard, [r.clean_correct for r in clean], batch_size)
    return [r for p, r in enumerate(clean) if p in owned]


def complete(records: list[Record], ds: Dataset, shard: Shard | None) -> list[Record]:
    """Under torchrun, every rank's records of one (model, threat) in dataset order; else as given."""
    if shard is None or not shard.distributed:
        return records
    return gather_records(records, {i: p for p, i in enumerate(ds.ids)})


def note_skipped(job: Job, store: RecordStore, on_warning: Callable[[str], None] | None) -> None:
    """``--skip-unreadable``: say which images were left out, and keep the list in run.json."""
    if not job.skipped:
        return
    store.annotate("skipped_unreadable", {job.ds.name + (f" [{job.ds.part}]" if job.ds.part else ""): job.skipped})
    if on_warning:
        on_warning(f"{job.model.name}: {len(job.skipped)} unreadable image(s) left out of {job.ds.name} "
                   f"(--skip-unreadable), e.g. {job.skipped[0]}")


def run_job(job: Job, clean_all: list[Record], clean_seconds: float, threats: list[Threat], args: RunArgs,
            store: RecordStore, shard: Shard | None, device: torch.device, results: dict[ResultKey, list[Record]],
            on_progress: Callable[[str, int, int], None] | None, on_warning: Callable[[str], None] | None,
            ) -> Iterator[tuple[str, str, list[Record], float, int]]:
    """Every threat of one job after its clean pass (``clean_all``, taking ``clean_seconds``):
    ``(spec, unit, records, seconds, pooled parts)`` each, the clean threat first, each as soon as
    it is done (so that its row is shown then)."""
    model, ds = job.model, job.ds
    key = record_key(model.name, ds.part)  # records files: one set per data part
    clean = store.records(key, CLEAN, lambda journal: owned_clean(clean_all, shard, args.batch_size))
    yield CLEAN, "none", complete(clean, ds, shard), clean_seconds, 1
    label = f"{model.name}{f' [{ds.part}]' if ds.part else ''}"
    for threat in threats:
        check_modality(model, threat)
        threat.warm_up()  # imports and WordNet's index: one-time costs, not this threat's seconds
        parts = threat.expand()
        seconds = 0.0
        for k, part in enumerate(parts):
            what = f"{label} · {threat.short}" + (f" ({k + 1}/{len(parts)}: {part.short})" if len(parts) > 1 else "")
            step = (lambda done, total, what=what: on_progress(what, done, total)) if on_progress else None
            recs = store.records(key, part.spec, lambda journal, part=part, step=step: attack_records(
                model, ds, part, clean_all, args.batch_size, args.seed, journal=journal, shard=shard,
                amp=args.amp, on_warning=on_warning, feed=job.feed, on_batch=step))
            seconds += store.seconds  # compute time, also of batches a killed run journaled
            results[(model.name, ds.name, ds.split, part.spec)] = recs = complete(recs, ds, shard)
            if len(parts) == 1:
                yield threat.spec, threat.norm, recs, seconds, 1
        if len(parts) > 1:
            pooled = [r for part in parts for r in results[(model.name, ds.name, ds.split, part.spec)]]
            if shard is None or not shard.distributed:  # a rank's folder keeps its own records only
                store.write(key, threat.spec, pooled)
            yield threat.spec, threat.norm, pooled, seconds, len(parts)


def header_lines(jobs: list[Job], device: torch.device) -> dict[tuple[str, str], str]:
    """What the run does, one line per (model, data): examples, preprocessing, decoding."""
    lines = {}
    parts: dict[tuple[str, str], int] = {}
    for j in jobs:
        parts[(j.model.name, j.ds.name)] = parts.get((j.model.name, j.ds.name), 0) + 1
    seen = set()
    for j in jobs:
        key = (j.model.name, j.ds.name)
        if key in seen:
            continue
        seen.add(key)
        what = f"{j.model.name} on {j.ds.name}" + (f" ({parts[key]} parts)" if parts[key] > 1 else f" ({j.ds.split})")
        threads = torch.get_num_threads()
        line = f"{what}: n={len(j.ds)} on {device} · {threads} thread{'s' if threads != 1 else ''}"
        if j.preprocessing:
            workers = j.feed.workers if j.feed is not None else 0
            line += f" · images: {j.preprocessing} · {workers or 'no'} decoding worker{'s' if workers != 1 else ''}"
        lines[key] = line
    return lines


def evaluate(
    args: EvaluateArgs,
    on_row: Callable[[ResultRow], None] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    on_header: Callable[[str], None] | None = None,
    on_models: Callable[[list[LoadedModel]], None] | None = None,
) -> list[ResultRow]:
    """Evaluate each model (default: the whole zoo) on its dataset under each threat of the suite.

    ``args.models`` holds MODEL specs (zoo names, paths, ``timm:``/``hf:``) or, from Python, ready
    :class:`LoadedModel` objects. Returns one row per (model, data, threat), the clean row
    (``threat = none``) first for each model, each with the sanity battery's flags; a dataset with
    several parts (``imagenet-c:DIR``) adds its summary rows (:func:`robench.data.imagenet_rows.imagenet_c_rows`),
    ReaL labels (``imagenet-real:DIR``) a re-scored clean row. With ``--out``, records are journaled
    and a killed run resumes where it stopped. ``on_models`` sees the loaded models before any
    evaluation work and may refuse the run (raise :class:`RobenchError`), e.g. an output that cannot
    be made for them; ``on_header`` hears one line per (model, data) with its first row.
    """
    device = resolve_device(args.device)
    resolve_threads(args.threads)
    shard, device = resolve_shard(args, device)
    if shard is not None and not shard.distributed and args.baseline is not None:
        # a shard's models are attacked on different examples (their correctly classified ones): no pairs yet
        raise RobenchError(f"--baseline pairs models on the same examples, which a --shard process does not have; "
                           f"drop it here and pair after merging: robench merge {args.out} --baseline {args.baseline}")
    specs = list(args.models) or list_zoo()
    if not specs:
        raise RobenchError("no models given and the zoo is empty; pass a checkpoint path or set ROBENCH_ZOO")
    appended = args.baseline is not None and args.baseline not in [getattr(s, "name", s) for s in specs]
    if appended:
        specs.append(args.baseline)
    threats = resolve_threats(args)
    datasets: dict = {}
    models = [s if isinstance(s, LoadedModel) else load_spec(s, args, device, datasets) for s in specs]  # fail fast
    base_name = None if args.baseline is None else models[[getattr(s, "name", s) for s in specs].index(args.baseline)].name
    models = distinct_models(models, appended_baseline=appended)
    if on_models:
        on_models(models)
    if any(m.task == LM_TASK for m in models):  # language models: perplexity rows (robench.lm.perplexity)
        if not all(m.task == LM_TASK for m in models):
            raise RobenchError("language models and classifiers cannot be evaluated in one run; evaluate them separately")
        from robench.lm.perplexity import evaluate_lm

        return evaluate_lm(args, models, threats, device, on_row=on_row, on_note=on_note, baseline=base_name)
    if args.threats:
        modalities = {modality_of(m) for m in models}
        for t in [t for ts in threats.values() for t in ts]:
            if t.modality not in modalities:
                raise RobenchError(f"threat {t.name!r} is a {t.modality} threat but no evaluated model is a {t.modality} model")
    for t in dict.fromkeys(t for m in ("image", "text") if any(modality_of(x) == m for x in models) for t in threats[m]):
        t.check_available()  # a missing download or resource fails now, not after the clean passes
    jobs = prepare(args, models, datasets, on_note=on_note)
    headers = header_lines(jobs, device) if on_header else {}
    all_specs = [t.spec for m in ("image", "text") for t in threats[m]]
    store = open_store(args, shard, run_config("evaluate", args, jobs, all_specs, device, shard))
    partial = shard is not None and not shard.distributed  # rows of this process cover only its shard
    rows: list[ResultRow] = []
    results: dict[ResultKey, list[Record]] = {}
    model_checks: dict[str, list[Flag]] = {}
    for job in jobs:
        start = time.perf_counter()
        what = f"{job.model.name}{f' [{job.ds.part}]' if job.ds.part else ''} · clean"
        step = (lambda done, total, what=what: on_progress(what, done, total)) if on_progress else None
        clean_all = run_clean(job, args.batch_size, step)  # every shard needs every clean prediction
        clean_seconds = time.perf_counter() - start
        note_skipped(job, store, on_warning)
        model, ds = job.model, job.ds  # --skip-unreadable may have left examples out of ds
        warning = probe_preprocessing(model, ds, job.expected_accuracy, args.seed, job.feed)
        if warning and on_warning:
            on_warning(warning)
        if model.name not in model_checks:  # once per model (ImageNet-C: not once per part)
            model_checks[model.name] = model_flags(model, ds, args.seed, job.feed)
        for spec, unit, recs, seconds, pooled in run_job(job, clean_all, clean_seconds, threats[modality_of(model)], args,
                                                         store, shard, device, results, on_progress, on_warning):
            if shard is not None and shard.distributed:
                seconds = gather_max(seconds)
            row = make_row(job, spec, recs, unit, seconds, args.seed, device)
            results[row_key(row)] = recs
            if pooled > 1:  # pooled over several threats: one row about len(recs) / pooled examples
                set_pooled_n(row, len(recs) // pooled)
            attach([row], model_checks, {})
            rows.append(row)
            header = headers.pop((model.name, ds.name), None) if spec == CLEAN else None
            if header:  # shown with the first row, so that a bad input before it stays a one-line error
                on_header(header)
            if on_row:
                on_row(row)
            if spec == CLEAN and job.ds.real_labels is not None:  # re-scored from the records (merge does the same)
                from robench.data.imagenet_rows import real_row

                rows.append(real_row(row, recs))
                if on_row:
                    on_row(rows[-1])
    if store.resumed and on_note:
        on_note(f"resumed: {store.resumed} records taken from the previous run in {args.out}")
    per_row = {} if partial else row_flags(rows, results)  # a shard's rows are compared after `robench merge`
    attach(rows, model_checks, per_row)
    if on_warning:
        for model, flags in model_checks.items():
            for f in flags:
                on_warning(f"{model}: {f}")
        for (model, _dataset, _split, spec), flags in per_row.items():
            for f in flags:
                on_warning(f"{model}: {f}")
    if args.baseline is not None:  # (a --shard process has none: refused above, paired by robench merge)
        add_baseline(rows, results, base_name)
    if not partial:
        from robench.data.imagenet_rows import imagenet_c_rows

        summary = imagenet_c_rows(rows, results)
        attach(summary, model_checks, {})
        for row in summary:
            rows.append(row)
            if on_row:
                on_row(row)
    store.write_rows(rows)
    if partial and on_note:
        on_note(f"shard {shard.index}/{shard.count}: these rows cover only this shard's examples; "
                f"combine the shards with `robench merge {args.out}`")
    return rows
