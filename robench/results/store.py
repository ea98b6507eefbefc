"""Crash-safe per-example records under ``--out DIR``: a killed run resumes where it stopped.

``DIR/run.json``
    the run's configuration and its hash. A later command with another configuration is refused
    (exit 2, naming what differs) instead of mixing the records of two experiments.
``DIR/MODEL__SPEC.jsonl``
    the finished records of one (model, threat) in dataset order, written atomically.
``DIR/rows.json``
    the rows of the finished run (the same as a ``--json`` export).
``DIR/timings.json``
    the compute seconds of each finished records file (a resumed row keeps them).
``DIR/MODEL__SPEC.jsonl.journal``
    while that (model, threat) runs: whole batches of records, each closed by a marker line
    ``{"_batch": k}`` and fsynced before the next batch starts. On resume only marked batches
    count; a torn tail (kill -9 or power loss in the middle of a write) is cut off. Since every
    batch is seeded by its position (:func:`robench.seeds.batch_seed`), recomputing a lost batch
    gives the records it would have had, so a resumed run ends with exactly the uninterrupted summary.

A run opening ``DIR`` removes the ``.NAME.*.tmp`` files of atomic writes a killed run left there.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from robench.errors import RobenchError
from robench.fileio import atomic_write_text
from robench.results.records import Record, read_records, write_records

BATCH_KEY = "_batch"
SECONDS_KEY = "_seconds"
ROWS_FILE = "rows.json"
TIMINGS_FILE = "timings.json"  # compute seconds per finished records file
# What a run found out or ran with (RecordStore.annotate): in run.json, not in its hash, so a resume
# or a merge across machines with other core counts still matches.
NOTE_KEYS = ("skipped_unreadable", "threads")


def record_key(model: str, part: str = "") -> str:
    """The name records are stored under: the model, or ``MODEL@PART`` for one part of a dataset
    that has several (ImageNet-C's ``CORRUPTION/SEVERITY``)."""
    return f"{model}@{part}" if part else model


def records_path(out: Path, model: str, spec: str) -> Path:
    """Where the records of (model, threat) live under ``--out`` (``:`` and ``/`` of either, as in
    ``timm:NAME=path/w.safetensors``, become ``_``)."""
    def safe(s: str) -> str:
        return s.replace(":", "_").replace("/", "_").replace(os.sep, "_")

    return out / f"{safe(model)}__{safe(spec)}.jsonl"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Append-only record log of one (model, threat): whole batches, each fsynced."""

    def __init__(self, path: Path, before_first_write: Callable[[], None] | None = None) -> None:
        self.path = path
        self.before_first_write = before_first_write  # creates --out only once there is something to keep
        self.seconds = 0.0  # compute time of the complete batches (their markers' "_seconds")
        self.done: dict[int, Record] = self._recover()

    def _recover(self) -> dict[int, Record]:
        """Records of the complete batches; anything after the last batch marker is cut off."""
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        done: dict[int, Record] = {}
        pending: list[Record] = []
        good_end = pos = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn last line
            try:
                obj = json.loads(line)
                if BATCH_KEY in obj:
                    if obj[BATCH_KEY] != len(pending):
                        break
                    done.update((r.id, r) for r in pending)
                    self.seconds += float(obj.get(SECONDS_KEY, 0.0))
                    pending = []
                    good_end = pos + len(line)
                else:
                    pending.append(Record(**obj))
            except (ValueError, TypeError):
                break  # a torn or foreign line: everything from here on is redone
            pos += len(line)
        if good_end < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
                os.fsync(f.fileno())
        return done

    def append(self, records: list[Record], seconds: float = 0.0) -> None:
        """Add one batch durably: it is either entirely in the journal after a crash, or not at all.
        ``seconds``, the batch's compute time, is kept in its marker: a resumed row reports the time
        the work took, not the time it took to read it back."""
        marker = {BATCH_KEY: len(records), SECONDS_KEY: round(seconds, 6)}
        payload = "".join(json.dumps(asdict(r)) + "\n" for r in records) + json.dumps(marker) + "\n"
        new = not self.path.exists()
        if new and self.before_first_write is not None:
            self.before_first_write()
        try:
            with open(self.path, "ab") as f:
                f.write(payload.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            if new:
                _fsync_dir(self.path.parent)
        except OSError as e:
            raise RobenchError(f"cannot append records to {self.path}: {e.strerror}; free disk space or choose another --out") from None
        for r in records:
            self.done[r.id] = r
        self.seconds += seconds


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def config_differences(old: dict, new: dict) -> list[str]:
    """``key: old there vs new now`` for every key whose value differs."""
    keys = sorted(set(old) | set(new))
    return [f"{k}: {json.dumps(old.get(k))} there vs {json.dumps(new.get(k))} now" for k in keys if old.get(k) != new.get(k)]


class RecordStore:
    """The records of a run under ``--out`` (or nowhere when ``out`` is None).

    ``config`` holds everything that changes the records (models and their hashes, data, sample,
    seed, batch size, threats, device type, robench version). It is written to ``run.json`` on the
    first record and compared on every later run into the same directory.
    """

    def __init__(self, out: Path | None, config: dict) -> None:
        self.out = out
        self.config = {**config, "config_hash": config_hash(config)}
        self.notes: dict[str, dict] = {}  # annotations: in run.json, not in the hash
        self.resumed = 0  # records taken from a previous run
        if out is None:
            return
        existing = next(a for a in [out, *out.parents] if a.exists())
        if not existing.is_dir():
            raise RobenchError(f"--out {out}: {existing} is a file, not a directory; choose another --out")
        for stale in out.glob(".*.tmp") if out.is_dir() else []:
            stale.unlink(missing_ok=True)  # an atomic write's temp file a killed run left behind
        meta = out / "run.json"
        if meta.is_file():
            try:
                old = json.loads(meta.read_text())
            except ValueError:
                raise RobenchError(f"--out {out}: run.json is not valid JSON; remove it or choose another --out") from None
            if old.get("config_hash") != self.config["config_hash"]:
                diff = config_differences({k: v for k, v in old.items() if k != "config_hash" and k not in NOTE_KEYS}, config)
                raise RobenchError(
                    f"--out {out} holds records of a different run ({'; '.join(diff[:3]) or 'config differs'}); "
                    "rerun the same command to resume it, or choose another --out"
                )

    def _open(self) -> None:
        assert self.out is not None
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RobenchError(f"--out {self.out}: cannot create the directory ({e.strerror})") from None
        meta = self.out / "run.json"
        if not meta.is_file():
            atomic_write_text(meta, json.dumps({**self.config, **self.notes}, indent=1, sort_keys=True) + "\n")

    def annotate(self, key: str, value) -> None:
        """Record what the run found out or ran with (the unreadable images it skipped, its CPU
        threads) in run.json, beside the config: dicts are merged into ``key``, other values set;
        outside the config hash, so a resume still matches."""
        assert key in NOTE_KEYS, key
        if isinstance(value, dict):
            value = {**self.notes.get(key, {}), **value}
        self.notes[key] = value
        if self.out is None or not (self.out / "run.json").is_file():
            return  # written with the config on the first record
        meta = self.out / "run.json"
        data = json.loads(meta.read_text())
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
        atomic_write_text(meta, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def records(self, model: str, spec: str, compute: Callable[[Journal | None], list[Record]]) -> list[Record]:
        """The records of (model, spec): read back when finished before, else ``compute(journal)``
        (which skips what the journal already holds) and stored. ``self.seconds`` is then the
        compute time of these records, over every run that contributed to them."""
        start = time.perf_counter()
        if self.out is None:
            recs = compute(None)
            self.seconds = time.perf_counter() - start
            return recs
        path = records_path(self.out, model, spec)
        journal_path = path.with_name(path.name + ".journal")
        if path.is_file():
            recs = read_records(path)
            self.resumed += len(recs)
            timings = self._timings()
            if path.name in timings:
                self.seconds = float(timings[path.name])
            else:  # killed between writing the records and their time: the journal still has it
                self.seconds = Journal(journal_path).seconds if journal_path.is_file() else time.perf_counter() - start
                self._record_seconds(path.name, self.seconds)
            journal_path.unlink(missing_ok=True)  # (killed before it was removed: its records are in the file)
            return recs
        journal = Journal(journal_path, self._open)
        self.resumed += len(journal.done)
        before = journal.seconds
        recs = compute(journal)
        # the journaled batches' time plus this run's work beyond them (reading the journal back is free)
        self.seconds = before + (time.perf_counter() - start) if journal.seconds == before else journal.seconds
        self._open()
        write_records(path, recs)
        self._record_seconds(path.name, self.seconds)
        journal.path.unlink(missing_ok=True)
        return recs

    def _timings(self) -> dict:
        try:
            return json.loads((self.out / TIMINGS_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def _record_seconds(self, name: str, seconds: float) -> None:
        atomic_write_text(self.out / TIMINGS_FILE, json.dumps({**self._timings(), name: round(seconds, 6)}, indent=1, sort_keys=True) + "\n")

    def write_rows(self, rows: list) -> None:
        """The run's rows as ``rows.json`` beside its records (what ``robench merge`` and
        ``robench leaderboard DIR/rows.json`` read)."""
        if self.out is not None:
            from robench.results.schema import to_json

            self._open()
            atomic_write_text(self.out / ROWS_FILE, to_json(rows))

    def write(self, model: str, spec: str, records: list[Record]) -> None:
        """Store records computed from others (pooled rows) without a journal."""
        if self.out is not None:
            self._open()
            write_records(records_path(self.out, model, spec), records)
