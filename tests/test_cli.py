"""CLI contract: --help imports, the evaluate leaderboard and exports, exit codes for bad input."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import pytest
import scipy.stats

from conftest import REPO, assert_one_line_error
from robench.results.schema import COLUMNS


def test_help_does_not_import_textattack_timm_or_torch():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "robench", "--help"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    for heavy in ("textattack", "timm", "torch", "torchattacks"):
        assert heavy not in imported, heavy
    for cmd in ("evaluate", "attack", "train", "models", "threats", "leaderboard", "doctor"):
        assert cmd in proc.stdout


def test_version(cli):
    from robench import __version__

    proc = cli("--version")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"robench {__version__}\n", "")


def test_every_option_has_help_and_train_states_its_per_task_defaults():
    import typer

    from robench.cli import app
    from robench.lm.train import DEFAULTS as LM
    from robench.training.classifier import IMAGE_SOURCE_DEFAULTS as IMAGES, TASKS

    commands = _commands()
    undocumented = [(name, p.name) for name, c in commands.items() for p in c.params if not getattr(p, "help", None)]
    assert undocumented == []
    train = {p.name: p.help for p in commands["train"].params}
    for option, key in (("epochs", "epochs"), ("embed_dim", "embed_dim"), ("depth", "depth"), ("num_heads", "num_heads"),
                        ("lr", "lr"), ("batch_size", "batch_size")):
        values = (TASKS["digits"][key], TASKS["wordnet-topics"][key], IMAGES[key], LM[key])
        expected = "default per task: digits {:g}, wordnet-topics and text tables {:g}, image sources {:g}, lm {:g}".format(*values)
        assert expected in train[option], (option, train[option])


def _commands() -> dict:
    """Every command with its options built (train and diagnose build theirs on first use)."""
    import typer

    from robench.cli import app
    from robench.cli.options import DeferredOptions

    commands = typer.main.get_command(app).commands
    for c in commands.values():
        if isinstance(c, DeferredOptions):
            c.load()
    return commands


def test_every_option_is_its_dataclass_field():
    """Each command's options are the CLI fields of its arguments dataclass: the same default (shown in
    --help), the field's flags and help, and a value given on the command line reaches the field."""
    import dataclasses

    from robench.argspec import REQUIRED, cli_fields
    from robench.engine.args import AttackArgs, CurveArgs, EvaluateArgs, MergeArgs
    from robench.studies.diagnose import DiagnoseArgs
    from robench.training.classifier import TrainArgs

    commands = _commands()
    excluded = {"curve": {"suite", "threats", "baseline"}}
    for name, cls in (("evaluate", EvaluateArgs), ("attack", AttackArgs), ("curve", CurveArgs), ("merge", MergeArgs),
                      ("train", TrainArgs), ("diagnose", DiagnoseArgs)):
        params = {p.name: p for p in commands[name].params}
        for f in cli_fields(cls):
            if f.name in excluded.get(name, ()):
                assert f.name not in params
                continue
            p, meta = params[f.name], f.metadata["cli"]
            assert p.help == meta["help"] and p.help, (name, f.name)
            if meta["flags"] is not None:
                assert tuple(p.opts) == meta["flags"], (name, f.name, p.opts)
                assert p.show_default, (name, f.name)
            if f.default is REQUIRED or meta["required"]:
                assert p.required, (name, f.name)
            elif f.default in ((), []):
                assert p.default is None and p.multiple or p.nargs == -1, (name, f.name)
            else:
                assert p.default == f.default, (name, f.name, p.default, f.default)
                assert not p.required
        # nothing else: the remaining options are the command's own (exports, --quiet, train's --out)
        own = set(params) - {f.name for f in dataclasses.fields(cls)}
        assert own <= {"csv", "json_", "markdown", "plot", "quiet", "auc_csv", "out"}, (name, own)


def test_command_line_values_reach_the_dataclass(monkeypatch):
    """What a command hands its library call: the dataclass built from the parsed options, with the
    defaults of the fields left unset (evaluate's and attack's options, stopped before any work)."""
    from robench.cli import app
    import robench.engine.evaluate as engine

    seen = {}

    def stop(args, **_):
        seen["args"] = args
        return []

    monkeypatch.setattr(engine, "evaluate", stop)
    app(["evaluate", "digits-vit-sa", "-n", "7", "--threat", "fgsm", "--threat", "pgd", "--model-arg", "img_size=32",
         "--mean", "0.5", "--skip-unreadable", "--quiet"], standalone_mode=False)
    from robench.engine.args import EvaluateArgs

    expected = EvaluateArgs(models=["digits-vit-sa"], num_examples=7, threats=["fgsm", "pgd"], model_args={"img_size": 32},
                            mean=[0.5], skip_unreadable=True)
    assert seen["args"] == expected
    assert seen["args"].batch_size == 256 and seen["args"].std is None and seen["args"].suite == "default"


def test_timm_registry_creates_every_variant():
    import timm
    import torch

    import robench.models.timm_models  # noqa: F401  (registers with timm)

    for v in ("sa", "bsa", "grc", "bsa_grc"):
        m = timm.create_model(f"robench_vit_{v}", img_size=8, patch_size=2, in_chans=1, num_classes=10, embed_dim=32, depth=2)
        assert m(torch.rand(2, 1, 8, 8)).shape == (2, 10)
        assert (m.pos_embed is None) == v.startswith("bsa")
    assert set(timm.list_models("robench_vit_*")) == {"robench_vit_sa", "robench_vit_bsa", "robench_vit_grc", "robench_vit_bsa_grc"}


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["evaluate", "no-such-model"], "unknown model 'no-such-model'"),
        (["evaluate", "digits-vit-sa", "--device", "tpu"], "unknown device 'tpu'"),
        (["evaluate", "digits-vit-sa", "-n", "0"], "-n/--num-examples must be >= 1"),
        (["evaluate", "digits-vit-sa", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["evaluate", "digits-vit-sa", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["evaluate", "digits-vit-sa", "--dataset", "wordnet-topics"], "is a image-classification model but dataset wordnet-topics is text-classification"),
        (["evaluate", "digits-vit-sa", "--split", "dev"], "has splits train, test"),
        (["evaluate", "timm:vit_tiny_patch16_224"], "a timm model needs --dataset"),
        (["evaluate", "hf:/no/such/dir", "--dataset", "digits"], "is not a directory"),
    ],
)
def test_bad_input_exit_2(cli, args, fragment):
    proc = cli(*args)
    assert_one_line_error(proc, fragment)


def test_invalid_export_directory_exit_2_and_no_file(cli, tmp_path):
    target = tmp_path / "missing" / "out.csv"
    proc = cli("evaluate", "digits-vit-sa", "--csv", str(target), "--device", "cpu")
    assert_one_line_error(proc, "does not exist; create it first")
    assert not target.parent.exists()


@pytest.mark.slow
def test_evaluate_zoo_reproduces_cards_and_exports_agree(cli, tmp_path, wordnet_available):
    from robench.models.loading import list_zoo, zoo_dir
    from robench.threats.suite import load_suite

    zoo = list_zoo()
    assert len(zoo) == 8
    paths = {fmt: tmp_path / f"rows.{ext}" for fmt, ext in (("csv", "csv"), ("json", "json"), ("markdown", "md"))}
    proc = cli("evaluate", "--device", "cpu", "--out", str(tmp_path / "records"),
               *(x for fmt, p in paths.items() for x in (f"--{fmt}", str(p))))
    assert proc.returncode == 0, proc.stderr
    for name in zoo:
        assert name in proc.stdout
    assert "higher is better" in proc.stdout and "95% CI" in proc.stdout
    rows = list(csv.DictReader(paths["csv"].open()))
    assert list(rows[0]) == COLUMNS
    suite = load_suite("default")
    image_threats = [t.spec for t in suite.for_modality("image")]
    text_threats = [t.spec for t in suite.for_modality("text")]
    assert image_threats and text_threats
    expected = (
        [(m, "none") for m in zoo]
        + [(m, t) for m in zoo if m.startswith("digits") for t in image_threats]
        + [(m, t) for m in zoo if m.startswith("wordnet") for t in text_threats]
    )
    assert sorted((r["model"], r["threat"]) for r in rows) == sorted(expected)
    as_json = json.loads(paths["json"].read_text())
    md = paths["markdown"].read_text()
    assert len(as_json) == len(rows)
    for r, j in zip(rows, as_json):
        card = json.loads((zoo_dir() / f"{r['model']}.json").read_text())
        # re-measured accuracy equals the card's figure, on the same n
        assert float(r["clean_acc"]) == pytest.approx(card["evaluation"]["clean_accuracy"], abs=1e-6)
        assert int(r["n"]) == card["evaluation"]["n"]
        assert r["checkpoint_sha256"] == card["weights_sha256"]
        for c in COLUMNS:
            assert str(j[c]) == r[c] or (j[c] is None and r[c] == "") or float(j[c]) == float(r[c])
        assert f"| {r['model']} | {r['checkpoint_sha256']} |" in md
        assert f"| {r['clean_acc']} | {r['attacked_acc']} | {r['attacked_ci_low']} | {r['attacked_ci_high']} |" in md
        assert float(r["attacked_acc"]) <= float(r["clean_acc"])
        assert r["flags"] == r["flag_notes"] == ""  # the sanity battery finds nothing wrong with the zoo
        # the records are the source of the summary
        fname = f"{r['model']}__{r['threat'].replace(':', '_').replace('/', '_')}.jsonl"
        recs = [json.loads(l) for l in (tmp_path / "records" / fname).read_text().splitlines()]
        assert len(recs) == int(r["n"])
        assert sum(x["clean_pred"] == x["label"] for x in recs) / len(recs) == pytest.approx(float(r["clean_acc"]), abs=1e-6)
        assert sum(x["attacked_pred"] == x["label"] for x in recs) / len(recs) == pytest.approx(float(r["attacked_acc"]), abs=1e-6)
    # the table shows the numbers the CSV holds
    for r in rows:
        if r["threat"] != "none":
            assert f"{100 * float(r['attacked_acc']):.1f} ±" in proc.stdout
    # `robench leaderboard` re-renders and re-exports the same rows
    again = tmp_path / "again.json"
    proc2 = cli("leaderboard", str(paths["csv"]), "--json", str(again))
    assert proc2.returncode == 0, proc2.stderr
    assert json.loads(again.read_text()) == as_json


def test_sample_is_stratified_and_machine_output(cli):
    proc = cli("evaluate", "digits-vit-sa", "-n", "50", "--seed", "1", "--suite", "clean", "--json", "-", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 1 and rows[0]["n"] == 50 and rows[0]["seed"] == 1
    lo, hi, acc = rows[0]["attacked_ci_low"], rows[0]["attacked_ci_high"], rows[0]["clean_acc"]
    # the clean suite attacks nothing: the interval is the Wilson interval of the clean count,
    # written out here from k and n (Wilson 1927) with z the 97.5% normal quantile
    k, n = round(acc * 50), 50
    assert acc == pytest.approx(k / n, abs=1e-6)
    z = scipy.stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert (lo, hi) == (pytest.approx(centre - half, abs=1e-6), pytest.approx(centre + half, abs=1e-6))


def test_models_lists_zoo(cli):
    proc = cli("models", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert len(data["zoo"]) == 8
    for e in data["zoo"]:
        assert e["params"] > 0 and e["n"] > 0
        assert e["clean_acc"] >= (0.78 if e["task"] == "text-classification" else 0.93)  # the zoo targets
    assert data["families"] == ["lm", "text", "vit"]


@pytest.mark.slow
def test_doctor_reports_missing_wordnet_with_fix(cli, tmp_path):
    from robench.resources.wordnet import DEBIAN_WORDNET

    if not (DEBIAN_WORDNET / "index.sense").is_file():
        pytest.skip("Debian's WordNet packages are not installed (scripts/setup.sh installs them)")
    env = {"HOME": str(tmp_path), "ROBENCH_HOME": str(tmp_path / "rb"), "NLTK_DATA": ""}
    proc = cli("doctor", "--quick", env=env)
    assert proc.returncode == 3, proc.stderr  # a required resource is missing: scripts can tell
    line = next(l for l in proc.stdout.splitlines() if "WordNet (NLTK)" in l)
    assert "missing" in line
    assert proc.stderr.strip().splitlines() == ["robench: doctor: required WordNet (NLTK), stopwords (NLTK) missing; "
                                                "see the table for how to fix"]
    proc = cli("doctor", "--quick", "--fix", env=env)  # provisions from Debian's files, offline
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rb" / "nltk_data" / "corpora" / "wordnet" / "lexnames").read_text().count("\n") == 45
    stop = (tmp_path / "rb" / "nltk_data" / "corpora" / "stopwords" / "english").read_text().split()
    assert len(stop) == 179 and stop[:3] == ["i", "me", "my"]
    line = next(l for l in proc.stdout.splitlines() if "WordNet (NLTK)" in l)
    assert "ok" in line
