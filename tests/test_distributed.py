"""Scaling out: torchrun (2 gloo ranks) and --shard i/n + merge give exactly the single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, assert_one_line_error

RUN = ["evaluate", "digits-vit-sa", "digits-vit-bsa", "--threat", "pgd:eps=0.1,alpha=1/40", "--threat", "square:eps=0.1,queries=20",
       "--threat", "corruption:name=gaussian_noise,severity=3", "-n", "90", "--batch-size", "8", "--seed", "5", "--device", "cpu"]


def _rows(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(path.read_text())]


def _records(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.jsonl"))}


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """The reference: one process, records under single/out, rows in single/rows.json."""
    from conftest import run_cli

    d = tmp_path_factory.mktemp("single")
    proc = run_cli(*RUN, "--out", str(d / "out"), "--json", str(d / "rows.json"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return d


@pytest.mark.slow
def test_torchrun_two_gloo_ranks_equal_one_process(single, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "robench", *RUN,
                           "--out", str(tmp_path / "out"), "--json", str(tmp_path / "rows.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("robench leaderboard: digits") == 1  # rank 1 stays quiet
    assert proc.stderr.count("wrote json") == 1
    assert _rows(tmp_path / "rows.json") == _rows(single / "rows.json")
    shards = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert shards == ["shard-0-of-2", "shard-1-of-2"]  # each rank journals its own shard (resumable per rank)
    # the ranks' records together are exactly the single run's
    merged = tmp_path / "merged"
    from conftest import run_cli

    m = run_cli("merge", str(tmp_path / "out"), "--out", str(merged), "--json", str(tmp_path / "merged.json"), "--quiet")
    assert m.returncode == 0, m.stderr
    assert _records(merged) == _records(single / "out")
    assert _rows(tmp_path / "merged.json") == _rows(single / "rows.json")


@pytest.mark.slow
def test_three_shards_then_merge_equal_one_process(single, tmp_path, cli):
    out = tmp_path / "shards"
    for i in range(3):
        proc = cli(*RUN, "--shard", f"{i}/3", "--out", str(out), "--quiet")
        assert proc.returncode == 0, proc.stderr
        assert f"shard {i}/3: these rows cover only this shard's examples" in proc.stderr
    sizes = [sum(len(p.read_bytes().splitlines()) for p in (out / f"shard-{i}-of-3").glob("*__none.jsonl")) for i in range(3)]
    assert sum(sizes) == 180 and min(sizes) > 0  # 90 examples x 2 models, each clean record in one shard
    for i in range(3):  # every row of a shard counts the same examples: clean records = each threat's records
        for model in ("digits-vit-sa", "digits-vit-bsa"):
            files = sorted((out / f"shard-{i}-of-3").glob(f"{model}__*.jsonl"))
            ids = {f.name: [json.loads(line)["id"] for line in f.read_text().splitlines()] for f in files}
            assert len(ids) == 4 and len({tuple(v) for v in ids.values()}) == 1, ids.keys()
    # merging 2 of 3 names the missing shard; a shard given twice is refused
    partial = tmp_path / "partial"
    partial.mkdir()
    for i in (0, 2):
        (partial / f"shard-{i}-of-3").symlink_to(out / f"shard-{i}-of-3")
    assert_one_line_error(cli("merge", str(partial)), "missing shard(s) 1/3 of 3")
    assert_one_line_error(cli("merge", str(out), str(out / "shard-1-of-3")), "shard 1/3 given twice")
    merged = tmp_path / "merged"
    proc = cli("merge", str(out), "--out", str(merged), "--json", str(tmp_path / "merged.json"))
    assert proc.returncode == 0, proc.stderr
    assert "robench leaderboard: digits" in proc.stdout
    assert _records(merged) == _records(single / "out")
    assert _rows(tmp_path / "merged.json") == _rows(single / "rows.json")
    assert json.loads((merged / "run.json").read_text()) == json.loads((single / "out" / "run.json").read_text())
    # resume works per shard: rerunning a finished shard reads its records back
    again = cli(*RUN, "--shard", "1/3", "--out", str(out), "--quiet")
    assert again.returncode == 0 and "resumed: " in again.stderr


@pytest.mark.slow
def test_merge_refuses_shards_of_different_runs(tmp_path, cli):
    for seed, i in (("0", 0), ("1", 1)):
        proc = cli("evaluate", "digits-vit-sa", "--suite", "clean", "-n", "30", "--seed", seed, "--shard", f"{i}/2",
                   "--out", str(tmp_path / "out"), "--quiet")
        assert proc.returncode == 0, proc.stderr
    assert_one_line_error(cli("merge", str(tmp_path / "out")), "belongs to another run")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--shard", "3/3", "--out", "OUT"], "expected i/n with 0 <= i < n"),
        (["--shard", "a/b", "--out", "OUT"], "expected i/n with 0 <= i < n"),
        (["--shard", "0/2"], "--shard needs --out DIR"),
    ],
)
def test_bad_shard_options(tmp_path, cli, args, fragment):
    args = [a.replace("OUT", str(tmp_path / "o")) for a in args]
    assert_one_line_error(cli("evaluate", "digits-vit-sa", "-n", "20", *args), fragment)
    assert not (tmp_path / "o").exists()


def test_shards_partition_every_record_once():
    """Ownership: attacked examples by batch, the others by position; every example in exactly one shard."""
    import torch

    from robench.data.base import Dataset
    from robench.engine.distributed import Shard, owned_clean
    from robench.models.loading import load_model
    from robench.results.records import Record
    from robench.engine.runner import attack_records
    from robench.threats.registry import build_threat

    model = load_model("digits-vit-sa")
    x = torch.rand(23, 1, 8, 8)
    ds = Dataset(name="t", task="image-classification", split="test", labels=model.labels, inputs=x,
                 targets=torch.arange(23) % 10, ids=list(range(100, 123)), sha256="")
    clean = [Record(id=100 + p, label=p % 10, clean_pred=p % 10 if p % 4 else (p + 1) % 10, attacked_pred=0) for p in range(23)]
    for r in clean:
        r.attacked_pred = r.clean_pred
    threat = build_threat("fgsm:eps=0.05")
    whole = attack_records(model, ds, threat, clean, 4, 0)
    for n in (1, 2, 3, 5):
        parts = [attack_records(model, ds, threat, clean, 4, 0, shard=Shard(i, n)) for i in range(n)]
        ids = sorted(r.id for p in parts for r in p)
        assert ids == list(range(100, 123))
        assert sorted((r for p in parts for r in p), key=lambda r: r.id) == whole
        for i, part in enumerate(parts):  # a shard's clean records are those of the same examples
            assert [r.id for r in owned_clean(clean, Shard(i, n), 4)] == [r.id for r in part]
