"""``robench merge``: combine the shards of one run (``--shard i/n`` or torchrun ranks) into its rows.

Each shard folder (``DIR/shard-i-of-n``) holds ``run.json`` (the run's configuration and the shard
it is), the shard's records and, once finished, ``rows.json``. Merging refuses shards of different
runs, a shard given twice, missing or unfinished shards and any example recorded twice, then
recomputes every row from the union of the records: the same rows a single process would give.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from robench.engine.args import MergeArgs
from robench.engine.distributed import SHARD_DIR
from robench.errors import RobenchError
from robench.results.records import Record, read_records
from robench.results.schema import ResultRow, read_rows
from robench.results.store import NOTE_KEYS, ROWS_FILE, RecordStore, config_differences, record_key, records_path
from robench.checks.sanity import Flag, attach, flag_rows
from robench.engine.baseline import add_baseline
from robench.engine.rows import recomputed, row_key, set_pooled_n
from robench.threats.base import CLEAN


@dataclass
class ShardDir:
    path: Path
    index: int
    count: int
    config: dict


def find_shards(dirs: Sequence[Path]) -> list[ShardDir]:
    """Shard folders among ``dirs``: each given folder is a shard, or holds ``shard-i-of-n`` folders."""
    found = []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise RobenchError(f"{d} is not a directory; give the --out DIR of the shards (or shard-i-of-n folders)")
        candidates = [d] if (d / "run.json").is_file() else sorted(c for c in d.iterdir() if SHARD_DIR.fullmatch(c.name))
        if not candidates:
            raise RobenchError(f"{d} holds no shard (no run.json, no shard-i-of-n folder); was it written with --shard or torchrun?")
        for c in candidates:
            try:
                config = json.loads((c / "run.json").read_text())
            except (OSError, ValueError):
                raise RobenchError(f"{c}/run.json is missing or not valid JSON; is {c} a robench shard?") from None
            if not config.get("shard"):
                raise RobenchError(f"{c} is a whole run, not a shard; there is nothing to merge")
            index, count = config["shard"]
            found.append(ShardDir(c, int(index), int(count), config))
    return found


def _run_config(shard: ShardDir) -> dict:
    """What must be equal across the shards of one run (notes such as the CPU threads may differ)."""
    return {k: v for k, v in shard.config.items() if k not in ("shard", "config_hash", *NOTE_KEYS)}


def check_shards(shards: list[ShardDir]) -> list[ShardDir]:
    """The shards of one run, complete, each once, in index order."""
    first = shards[0]
    by_index: dict[int, ShardDir] = {}
    for s in shards:
        if s.count != first.count:
            raise RobenchError(f"{s.path} is shard {s.index}/{s.count} but {first.path} is one of {first.count}; merge shards of one run")
        diff = config_differences(_run_config(first), _run_config(s))
        if diff:
            raise RobenchError(f"{s.path} belongs to another run than {first.path} ({'; '.join(diff[:3])})")
        if s.index in by_index:
            raise RobenchError(f"shard {s.index}/{s.count} given twice ({by_index[s.index].path} and {s.path}); "
                               "merging it twice would count its examples twice")
        by_index[s.index] = s
    missing = [i for i in range(first.count) if i not in by_index]
    if missing:
        names = ", ".join(f"{i}/{first.count}" for i in missing)
        raise RobenchError(f"missing shard(s) {names} of {first.count}: run the same command with --shard {missing[0]}/{first.count} "
                           "(same --out) and merge again")
    unfinished = [s for s in by_index.values() if not (s.path / ROWS_FILE).is_file()]
    if unfinished:
        s = unfinished[0]
        raise RobenchError(f"shard {s.index}/{s.count} in {s.path} has not finished (no {ROWS_FILE}); "
                           "rerun its command to resume it, then merge")
    return [by_index[i] for i in range(first.count)]


def _merged_records(shards: list[ShardDir], model: str, spec: str, expected: int) -> list[Record]:
    records: list[Record] = []
    for s in shards:
        path = records_path(s.path, model, spec)
        if not path.is_file():
            raise RobenchError(f"shard {s.index}/{s.count} has no records for {model} under {spec} ({path.name}); rerun it")
        records += read_records(path)
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise RobenchError(f"{model} under {spec}: an example is recorded by two shards; the shards overlap")
    if len(records) != expected:
        raise RobenchError(f"{model} under {spec}: the shards hold {len(records)} records for {expected} examples")
    return sorted(records, key=lambda r: r.id)  # ids follow dataset order for every robench loader


def _model_flags(clean_row: ResultRow) -> list[Flag]:
    """The model-level flags a shard attached to its clean row (row checks are redone after merging)."""
    if not clean_row.flags:
        return []
    notes = clean_row.flag_notes.split("; ")
    return [Flag(code, note.split(": ", 1)[1]) for code, note in zip(clean_row.flags.split(";"), notes)]


def _sizes(config: dict) -> dict[tuple[str, str, str], int]:
    """Examples per (model, dataset, split) of the run (unreadable images it skipped left out)."""
    skipped = config.get("skipped_unreadable", {})
    sizes = {}
    for (name, *_identity), (ds, split, _dsha, n, *_pre) in zip(config["models"], config["data"]):
        label = ds + (f" [{split}]" if ds.startswith("imagenet-c:") else "")
        sizes[(name, ds, split)] = int(n) - len(skipped.get(label, []))
    return sizes


def merge(args: MergeArgs) -> tuple[list[ResultRow], dict[tuple[str, str, str, str], list[Record]]]:
    """Rows of the whole run, recomputed from the union of its shards' records (and those records)."""
    from robench.data.imagenet_rows import has_real_labels, imagenet_c_rows, is_part_row, is_summary_row, real_row
    from robench.threats.registry import build_threat

    shards = check_shards(find_shards(args.dirs))
    config = _run_config(shards[0])
    sizes = _sizes(shards[0].config)  # with the notes: the unreadable images the shards skipped
    templates = read_rows(shards[0].path / ROWS_FILE)
    seconds: dict[tuple[str, str, str, str], float] = {}
    for s in shards:  # a sharded step takes as long as its slowest shard
        for r in read_rows(s.path / ROWS_FILE):
            seconds[row_key(r)] = max(seconds.get(row_key(r), 0.0), r.seconds)
    rows, results = [], {}
    model_flags: dict[str, list[Flag]] = {}
    for t in templates:
        if is_summary_row(t):
            continue  # recomputed below from the merged records
        key = record_key(t.model, t.split if is_part_row(t) else "")
        size = sizes[(t.model, t.dataset, t.split)]
        parts = build_threat(t.threat).expand() if t.threat != CLEAN else []
        if len(parts) > 1:
            for part in parts:
                results[(t.model, t.dataset, t.split, part.spec)] = _merged_records(shards, key, part.spec, size)
            recs = [r for part in parts for r in results[(t.model, t.dataset, t.split, part.spec)]]
        else:
            recs = _merged_records(shards, key, t.threat, size)
        results[row_key(t)] = recs
        row = recomputed(t, recs, seconds=seconds[row_key(t)])
        if len(parts) > 1:
            set_pooled_n(row, size)
        if t.threat == CLEAN:
            model_flags[t.model] = _model_flags(t)
        rows.append(row)
        if t.threat == CLEAN:
            row.attacked_top5 = row.clean_top5  # as robench.engine.rows.make_row: nothing attacked
            if has_real_labels(recs):  # ReaL: re-scored from the merged records
                rows.append(real_row(row, recs))
    flag_rows(rows, results, model_flags)
    if args.baseline is not None:
        add_baseline(rows, results, args.baseline)
    summary = imagenet_c_rows(rows, results)
    attach(summary, model_flags, {})
    rows += summary
    if args.out is not None:
        store = RecordStore(args.out, {**config, "shard": None})
        for key in NOTE_KEYS:  # what the shards noted: the same everywhere, or one value per shard
            values = [s.config[key] for s in shards if key in s.config]
            if values:
                store.annotate(key, values[0] if all(v == values[0] for v in values) else values)
        for (model, dataset, split, spec), recs in results.items():
            part = split if dataset.startswith("imagenet-c:") else ""
            store.write(record_key(model, part), spec, recs)
        store.write_rows(rows)
    return rows, results

