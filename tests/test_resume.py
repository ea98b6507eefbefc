"""Resume after kill -9, torn journal writes, config guards, and determinism across processes."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line_error
from robench.errors import RobenchError
from robench.results.records import Record
from robench.results.store import Journal, RecordStore


def _recs(ids: range) -> list[Record]:
    return [Record(id=i, label=i % 3, clean_pred=i % 3, attacked_pred=(i * 7) % 3, perturbation=i / 10, queries=2.0)
            for i in ids]


@pytest.mark.slow
def test_journal_keeps_exactly_the_whole_batches_before_any_cut(tmp_path):
    path = tmp_path / "j.jsonl.journal"
    batches = [_recs(range(0, 4)), _recs(range(4, 9)), _recs(range(9, 12))]
    j = Journal(path)
    ends = []
    for b in batches:
        j.append(b)
        ends.append(path.stat().st_size)
    data = path.read_bytes()
    for cut in range(len(data) + 1):  # a crash can stop a write at any byte
        path.write_bytes(data[:cut])
        complete = sum(1 for e in ends if e <= cut)
        got = Journal(path)
        assert got.done == {r.id: r for b in batches[:complete] for r in b}, cut
        assert path.stat().st_size == (ends[complete - 1] if complete else 0)  # the torn tail is cut off
        got.append(_recs(range(100, 102)))  # appending after recovery gives a well-formed journal
        assert set(Journal(path).done) == {r.id for b in batches[:complete] for r in b} | {100, 101}


def test_store_refuses_another_config_and_names_the_difference(tmp_path):
    store = RecordStore(tmp_path / "out", {"seed": 0, "threats": ["fgsm"]})
    store.records("m", "none", lambda journal: _recs(range(3)))
    assert (tmp_path / "out" / "m__none.jsonl").is_file()
    with pytest.raises(RobenchError, match=r"seed: 0 there vs 1 now.*rerun the same command to resume"):
        RecordStore(tmp_path / "out", {"seed": 1, "threats": ["fgsm"]})
    again = RecordStore(tmp_path / "out", {"seed": 0, "threats": ["fgsm"]})
    assert again.records("m", "none", lambda journal: pytest.fail("finished records must be read back")) == _recs(range(3))


CMD = ["evaluate", "digits-vit-sa", "--threat", "pgd:eps=0.05,alpha=0.01,steps=20", "--threat", "fgsm:eps=0.05",
       "--threat", "corruption:name=gaussian_noise,severity=3", "-n", "360", "--batch-size", "4", "--seed", "3",
       "--device", "cpu", "--quiet"]


def _start(out: Path, export: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "robench", *CMD, "--out", str(out), "--json", str(export)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _progress(out: Path) -> int:
    """Record lines written so far (finished files and journals)."""
    if not out.is_dir():
        return 0
    lines = 0
    for p in out.iterdir():
        if p.name.endswith((".jsonl", ".journal")):
            try:
                lines += p.read_bytes().count(b"\n")
            except FileNotFoundError:  # the running process just finished this journal and removed it
                pass
    return lines


def _without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _files(out: Path) -> dict:
    """Every file of an --out folder: bytes, except rows.json and timings.json, whose seconds are timings."""
    def content(p: Path):
        if p.name == "rows.json":
            return _without_timing(json.loads(p.read_text()))
        if p.name == "timings.json":
            return sorted(json.loads(p.read_text()))
        return p.read_bytes()

    return {p.name: content(p) for p in out.iterdir()}


@pytest.mark.slow
def test_killed_20_times_then_resumed_equals_an_uninterrupted_run(tmp_path):
    ref_out, ref_json = tmp_path / "ref", tmp_path / "ref.json"
    proc = _start(ref_out, ref_json)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    reference = _files(ref_out)
    out, export = tmp_path / "run", tmp_path / "run.json"
    rng = random.Random(20)
    mid_run = 0
    for k in range(20):
        before = _progress(out)
        proc = _start(out, export)
        if k % 4 == 3:  # at a random time, mostly during start-up and the clean pass
            time.sleep(rng.uniform(0.1, 2.5))
        else:  # after a random number of new records, sometimes a little later: inside the attack loops
            target = before + rng.randint(1, 60)
            while proc.poll() is None and _progress(out) < target:
                time.sleep(0.002)
            time.sleep(rng.choice([0, 0, rng.uniform(0, 0.05)]))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, "the run finished before the kill; give it more work"
        mid_run += any(p.suffix == ".journal" for p in out.glob("*"))
        assert not export.exists()  # never a half-written export
    assert mid_run >= 10, "too few kills landed inside an attack"
    proc = _start(out, export)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    assert _files(out) == reference  # records and run.json byte for byte, rows.json but for timing
    assert _without_timing(json.loads(export.read_text())) == _without_timing(json.loads(ref_json.read_text()))


@pytest.mark.slow
def test_resume_with_another_command_exits_2_and_keeps_the_records(tmp_path, cli):
    out = tmp_path / "out"
    proc = cli("evaluate", "digits-vit-sa", "--threat", "fgsm:eps=0.05", "-n", "40", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = cli("evaluate", "digits-vit-sa", "--threat", "fgsm:eps=0.05", "-n", "40", "--seed", "1", "--out", str(out))
    assert_one_line_error(proc, "holds records of a different run (seed: 0 there vs 1 now)")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    proc = cli("evaluate", "digits-vit-sa", "--threat", "fgsm:eps=0.05", "-n", "40", "--out", str(out))
    assert proc.returncode == 0 and "resumed: 80 records" in proc.stderr


def test_resume_refuses_an_edited_preprocessing_contract_beside_the_same_weights(tmp_path, cli):
    """The weights' sha256 does not change when a card's mean/std (or an hf: folder's processor) is
    edited; run.json's models entry carries the contract's digest, so --out does not mix the two."""
    import shutil

    for suffix in (".safetensors", ".json"):
        shutil.copy(REPO / "models" / f"digits-vit-sa{suffix}", tmp_path / f"m{suffix}")
    out, model = tmp_path / "out", str(tmp_path / "m.safetensors")
    proc = cli("evaluate", model, "--dataset", "digits", "--suite", "clean", "-n", "20", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    card = json.loads((tmp_path / "m.json").read_text())
    card["preprocessing"]["mean"] = [0.5]
    (tmp_path / "m.json").write_text(json.dumps(card))
    proc = cli("evaluate", model, "--dataset", "digits", "--suite", "clean", "-n", "20", "--out", str(out), "--quiet")
    assert_one_line_error(proc, "holds records of a different run (models:")


@pytest.mark.slow
def test_resumed_rows_keep_the_seconds_of_the_run_that_computed_them(tmp_path, cli):
    """A finished (model, threat) read back from --out reports the compute time recorded when it ran
    (timings.json), not the milliseconds of reading it; the journal keeps each batch's seconds."""
    out = tmp_path / "out"
    cmd = ("evaluate", "digits-vit-sa", "--threat", "pgd:eps=0.05,steps=10", "-n", "60", "--batch-size", "16", "--out", str(out))
    assert cli(*cmd, "--json", str(tmp_path / "a.json")).returncode == 0
    assert cli(*cmd, "--json", str(tmp_path / "b.json")).returncode == 0
    first, again = (json.loads((tmp_path / f"{k}.json").read_text()) for k in "ab")
    timings = json.loads((out / "timings.json").read_text())
    pgd = [r for r in first if r["threat"] != "none"][0]
    assert pgd["seconds"] > 0.01 and timings[records_path_name(pgd["threat"])] == pgd["seconds"]
    assert [r["seconds"] for r in again if r["threat"] != "none"] == [pgd["seconds"]]
    j = Journal(tmp_path / "j.journal")
    j.append(_recs(range(2)), seconds=1.25)
    j.append(_recs(range(2, 4)), seconds=0.5)
    assert Journal(tmp_path / "j.journal").seconds == 1.75


def records_path_name(spec: str) -> str:
    from robench.results.store import records_path

    return records_path(Path("."), "digits-vit-sa", spec).name


DETERMINISM = ["evaluate", "digits-vit-bsa", "--threat", "pgd:eps=0.1,alpha=0.02,steps=5", "--threat", "square:eps=0.1,queries=20",
               "--threat", "corruption:name=shot_noise,severity=2", "-n", "120", "--device", "cpu", "--quiet"]


@pytest.mark.slow
def test_same_seed_same_records_across_processes_other_seed_differs(tmp_path, cli, wordnet_available):
    outs = {}
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        out = tmp_path / name
        out.mkdir()
        for cmd in (DETERMINISM, ["evaluate", "wordnet-text-grc", "--threat",
                                  "typo:rate=0.2", "--threat", "word-swap:rate=0.2", "-n", "80", "--quiet"]):
            proc = cli(*cmd, "--seed", seed, "--out", str(out / cmd[1]), "--json", str(out / f"{cmd[1]}.json"))
            assert proc.returncode == 0, proc.stderr
        outs[name] = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.jsonl"))}
        outs[name + ".json"] = [_without_timing(json.loads(p.read_text())) for p in sorted(out.glob("*.json"))]
    assert len(outs["a"]) == 7
    assert outs["a"] == outs["b"] and outs["a.json"] == outs["b.json"]
    differs = [k for k in outs["a"] if k.split("__")[-1] != "none.jsonl" and outs["a"][k] != outs["c"].get(k)]
    assert len(differs) == 5  # every randomised threat changes with the seed (-n samples other examples too)
