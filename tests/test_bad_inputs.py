"""The bad-input catalogue: every entry -> one line on stderr, the documented exit code, no output file.

The same list renders the README's table (``catalogue_markdown``); a test keeps the two identical.
Entries run in-process through the real entry point (``robench.cli.app.main``) to keep the suite
fast; disk-full and Ctrl-C run as real processes (a resource limit, a signal).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from conftest import REPO, assert_one_line_error, default_sigint

ZOO = REPO / "models"


@dataclass(frozen=True)
class Bad:
    what: str  # the bad input, as the README names it
    args: tuple[str, ...]  # robench arguments; {bad} = the folder of prepared bad files, {out} = an empty output folder
    fragment: str  # what the one stderr line must contain
    code: int = 2

    def argv(self, bad: Path, out: Path) -> list[str]:
        return [a.format(bad=bad, out=out) for a in self.args]


EV = ("evaluate", "digits-vit-sa", "-n", "20")
TXT = ("evaluate", "wordnet-text-sa", "-n", "20")
CATALOGUE: list[Bad] = [
    # threat specs
    Bad("unknown threat", (*EV, "--threat", "fgsmm"), "unknown threat 'fgsmm'"),
    Bad("unknown threat parameter", (*EV, "--threat", "fgsm:epz=0.1"), "has no parameter 'epz'"),
    Bad("negative eps", (*EV, "--threat", "fgsm:eps=-0.1"), "below the minimum 0"),
    Bad("eps above the pixel range", (*EV, "--threat", "pgd:eps=2"), "above the maximum 1"),
    Bad("eps not a number", (*EV, "--threat", "fgsm:eps=abc"), "'abc' is not a number"),
    Bad("eps fraction dividing by zero", (*EV, "--threat", "fgsm:eps=8/0"), "divides by zero"),
    Bad("parameter without a value", (*EV, "--threat", "pgd:eps"), "'eps' is not key=value"),
    Bad("parameter given twice", (*EV, "--threat", "pgd:eps=0.1,eps=0.2"), "'eps' given twice"),
    Bad("zero PGD steps", (*EV, "--threat", "pgd:steps=0"), "below the minimum 1"),
    Bad("fractional step count", (*EV, "--threat", "pgd:steps=2.5"), "must be a whole number"),
    Bad("restarts without a random start", (*EV, "--threat", "pgd:restarts=2,random_start=0"), "restarts > 1 needs random_start=1"),
    Bad("corruption severity out of range", (*EV, "--threat", "corruption:name=fog,severity=6"), "above the maximum 5"),
    Bad("unknown corruption", (*EV, "--threat", "corruption:name=rain"), "'rain' is not one of"),
    Bad("contamination rate above 1", (*TXT, "--threat", "word-swap:rate=1.5"), "above the maximum 1"),
    Bad("text threat on an image model", (*EV, "--threat", "pwws"), "'pwws' is a text threat but no evaluated model is a text model"),
    Bad("unknown suite", (*EV, "--suite", "nope"), "unknown suite 'nope'"),
    Bad("eps too large for a float", (*EV, "--threat", "fgsm:eps=1e309"), "'1e309' is too large in magnitude for a finite number"),
    Bad("eps too large for a float (attack)", ("attack", "digits-vit-sa", "-n", "20", "--threat", "fgsm:eps=1e309"),
        "'1e309' is too large in magnitude for a finite number"),
    Bad("sweep value too large for a float", ("curve", "digits-vit-sa", "-n", "20", "--threat", "fgsm", "--sweep", "eps=0,1e999"),
        "--sweep eps: '1e999' is too large in magnitude for a finite number"),
    Bad("textattack recipe needing a download", (*TXT, "--threat", "textattack:textfooler"),
        "needs counter-fitted word embeddings and the Universal Sentence Encoder, which robench cannot provide"),
    # models and checkpoints
    Bad("unknown model name", ("evaluate", "no-such-model"), "unknown model 'no-such-model'"),
    Bad("missing checkpoint file", ("evaluate", "{bad}/missing.safetensors"), "not found"),
    Bad("corrupt checkpoint (random bytes)", ("evaluate", "{bad}/corrupt.safetensors"), "is corrupt or truncated"),
    Bad("truncated checkpoint", ("evaluate", "{bad}/truncated.safetensors"), "is corrupt or truncated"),
    Bad("safetensors header lying about sizes", ("evaluate", "{bad}/lying.safetensors"), "is corrupt or truncated"),
    Bad("card and weights of different shapes", ("evaluate", "{bad}/mismatch.safetensors"), "card does not match weights"),
    Bad("card describing other weights", ("evaluate", "{bad}/othercard.safetensors"), "describes other weights"),
    Bad("checkpoint without its card", ("evaluate", "{bad}/nocard.safetensors"), "needs its NAME.json card"),
    Bad("card that is not JSON", ("evaluate", "{bad}/badjson.safetensors"), "is not valid JSON"),
    Bad("pickle that would run code", ("evaluate", "{bad}/evil.pt"), "refusing to load"),
    Bad("weights giving inf logits", ("evaluate", "{bad}/inf.safetensors", "-n", "20"), "produced NaN or inf logits"),
    Bad("empty checkpoint file", ("evaluate", "{bad}/empty.pt", "--arch", "digits-vit-sa"), "is an empty file (0 bytes)"),
    Bad("state dict without weights", ("evaluate", "{bad}/nothing.pt", "--arch", "digits-vit-sa"), "holds an empty state dict"),
    Bad("timm folder without config.json", ("evaluate", "timm:{bad}/timm_noconfig", "--dataset", "digits"), "has no config.json"),
    Bad("timm config.json without an architecture", ("evaluate", "timm:{bad}/timm_noarch", "--dataset", "digits"),
        "config.json has no 'architecture'"),
    Bad("timm folder of an unknown architecture", ("evaluate", "timm:{bad}/timm_unknown", "--dataset", "digits"),
        "names architecture 'no_such_net', which timm"),
    Bad("timm folder without its weights", ("evaluate", "timm:{bad}/timm_noweights", "--dataset", "digits"),
        "has no model.safetensors (nor pytorch_model.bin)"),
    Bad("timm folder with another class count than the dataset", ("evaluate", "timm:{bad}/timm_5classes", "--dataset", "digits"),
        "has 5 classes (num_classes in config.json) but the dataset has 10 labels"),
    Bad("--use-ema on weights without EMA", (*EV, "--use-ema"), "holds no state_dict_ema"),
    Bad("the same model twice", ("evaluate", "digits-vit-sa", "models/digits-vit-sa.safetensors", "-n", "20"),
        "model 'digits-vit-sa' is given twice"),
    Bad("hf: folder without config.json", ("evaluate", "hf:{bad}/jpegs", "--dataset", "digits"), "has no config.json"),
    Bad("hf: config without an architecture", ("evaluate", "hf:{bad}/hf_config_only", "--dataset", "digits"),
        "config.json names no architecture"),
    Bad("hf: folder of another task (token classification)", ("evaluate", "hf:{bad}/hf_tokencls", "--dataset", "digits"),
        "names BertForTokenClassification, a token classification model; hf: takes an image classifier"),
    Bad("hf: bare encoder without a task head", ("evaluate", "hf:{bad}/hf_bert", "--dataset", "digits"),
        "names BertModel, a base model without a task head"),
    Bad("hf: image classifier without preprocessor_config.json", ("evaluate", "hf:{bad}/hf_vit_noproc", "--dataset", "{bad}/hf_images3"),
        "an image classifier needs its preprocessor_config.json"),
    Bad("hf: image classifier with fewer classes than the data", ("evaluate", "hf:{bad}/hf_vit3", "--dataset", "{bad}/hf_images5"),
        "has integer labels 3, 4 but model hf:"),
    Bad("--img-size on an hf: image classifier", ("evaluate", "hf:{bad}/hf_vit3", "--dataset", "{bad}/hf_images3", "--img-size", "64"),
        "--img-size/--crop-pct/--interpolation do not apply to an hf: image model"),
    Bad("hf: GPT-2 without tokenizer files", ("evaluate", "hf:{bad}/hf_gpt2_notok", "--dataset", "{bad}/lm.tokens"),
        "no tokenizer files in"),
    # data
    Bad("unknown dataset", (*EV, "--dataset", "nope"), "unknown dataset 'nope'"),
    Bad("missing dataset file", (*EV, "--dataset", "{bad}/missing.csv"), "not found"),
    Bad("empty dataset", (*TXT, "--dataset", "{bad}/empty.csv"), "is empty"),
    Bad("integer labels beyond the model's classes", (*TXT, "--dataset", "{bad}/five_labels.csv"),
        "has integer labels 4 but model wordnet-text-sa has 4 classes (0..3)"),
    Bad("label out of range", (*EV, "--dataset", "{bad}/label_range.safetensors"), "label 10 is out of range"),
    Bad("pixels outside [0, 1]", (*EV, "--dataset", "{bad}/pixels255.safetensors"), "pixels must be in [0, 1]"),
    Bad("NaN pixels", (*EV, "--dataset", "{bad}/nan_pixels.safetensors"), "has NaN or inf pixels"),
    Bad("images of the wrong shape", (*EV, "--dataset", "{bad}/big_images.safetensors"), "has images of shape (1, 16, 16)"),
    Bad("unknown split", (*EV, "--split", "dev"), "has splits train, test"),
    Bad("truncated MNIST .gz", (*EV, "--dataset", "{bad}/mnist/t10k-images-idx3-ubyte.gz"), "is truncated (the gzip stream ends early)"),
    Bad("truncated JPEG in an image folder", (*EV[:2], "--dataset", "{bad}/jpegs"),
        "jpegs/7/img1.jpg cannot be decoded (OSError: Truncated File Read); remove or replace the file"),
    Bad("truncated JPEG when training on an image folder", ("train", "--task", "{bad}/jpegs", "--eval-data", "{bad}/jpegs",
                                                            "--variant", "sa", "--img-size", "16", "--out", "{out}/m.safetensors"),
        "jpegs/7/img1.jpg cannot be decoded (OSError: Truncated File Read); remove or replace the file"),
    Bad("slice with non-integer bounds", (*TXT, "--dataset", "{bad}/dev.tsv[a:b]"), "[a:b] is not a slice of positions"),
    Bad("non-UTF-8 (cp1252) table", (*TXT, "--dataset", "{bad}/cp1252.csv"), "re-encode it as UTF-8, e.g. from Windows' cp1252: iconv -f cp1252"),
    Bad("non-UTF-8 JSON lines", (*TXT, "--dataset", "{bad}/cp1252.jsonl"), "is not UTF-8 text"),
    Bad("table with two label headers", (*TXT, "--dataset", "{bad}/two_label_headers.tsv"), "names column 'label' 2 times"),
    Bad("row with an extra field", (*TXT, "--dataset", "{bad}/extra_field.tsv"), "line 3: 3 fields but the header has 2"),
    Bad("--split on a single file", (*TXT, "--dataset", "{bad}/dev.tsv", "--split", "train"), "is a single file or folder, one split"),
    Bad("label names the model does not know", (*TXT, "--dataset", "{bad}/questions.jsonl"),
        "has labels model wordnet-text-sa does not know: 'DESC', 'HUM'"),
    Bad("data label missing from a --labels file", (*TXT, "--dataset", "{bad}/questions.jsonl", "--labels", "{bad}/desc.labels"),
        "has labels the --labels file"),
    Bad("--labels file naming a class twice", (*TXT, "--dataset", "{bad}/questions.jsonl", "--labels", "{bad}/twice.labels"),
        "lists 'HUM' more than once"),
    Bad("train on a 1-example table", ("train", "--task", "{bad}/one.tsv", "--eval-data", "{bad}/dev.tsv", "--variant", "sa",
                                       "--out", "{out}/m.safetensors"), "too few examples to train on"),
    Bad("train on a non-UTF-8 table", ("train", "--task", "{bad}/cp1252.csv", "--eval-data", "{bad}/dev.tsv", "--variant", "sa",
                                       "--out", "{out}/m.safetensors"), "is not UTF-8 text"),
    Bad("train on a header-only table", ("train", "--task", "{bad}/empty.csv", "--eval-data", "{bad}/dev.tsv", "--variant", "sa",
                                         "--out", "{out}/m.safetensors"), "is empty (it needs a header row and at least one example)"),
    # options
    Bad("zero examples", (*EV[:2], "-n", "0"), "-n/--num-examples must be >= 1"),
    Bad("zero batch size", (*EV, "--batch-size", "0"), "--batch-size must be >= 1"),
    Bad("batch size not a number", (*EV, "--batch-size", "abc"), "Invalid value for '--batch-size'"),
    Bad("unknown option", (*EV, "--epz", "0.1"), "No such option: --epz"),
    Bad("unknown device", (*EV, "--device", "tpu"), "unknown device 'tpu'"),
    Bad("CUDA requested where there is none", (*EV, "--device", "cuda"), "CUDA is not available here"),
    Bad("zero query budget", (*TXT, "--query-budget", "0"), "--query-budget must be >= 1"),
    Bad("negative seed", (*EV, "--seed", "-1"), "--seed must be in [0, 9223372036854775807]"),
    Bad("expected accuracy above 1", (*EV, "--expect-accuracy", "2"), "--expect-accuracy must be a clean accuracy in [0, 1]"),
    Bad("zero --lm-context", ("evaluate", "{bad}/lm.safetensors", "--dataset", "{bad}/lm.tokens", "--lm-context", "0"),
        "--lm-context must be >= 1"),
    Bad("--lm-context above the model's context", ("evaluate", "{bad}/lm.safetensors", "--dataset", "{bad}/lm.tokens",
                                                   "--lm-context", "100000"), "--lm-context 100000 is above model lm's context of 64 tokens"),
    Bad("--baseline in a --shard process", (*EV[:2], "digits-vit-bsa", "-n", "20", "--baseline", "digits-vit-sa", "--shard", "0/2",
                                            "--out", "{out}/shards"), "pair after merging: robench merge"),
    Bad("train with heads not dividing the width", ("train", "--task", "digits", "--variant", "sa", "--heads", "5",
                                                    "--out", "{out}/m.safetensors"), "--heads 5 must divide the width --embed-dim 64"),
    Bad("train with an unknown --arch-arg", ("train", "--task", "digits", "--variant", "bsa", "--arch-arg", "bsa_kernel=dot",
                                             "--out", "{out}/m.safetensors"), "--arch-arg bsa_kernel: unknown architecture option"),
    Bad("train with a bad --arch-arg value", ("train", "--task", "digits", "--variant", "bsa", "--arch-arg", "bsa_range=cosine",
                                              "--out", "{out}/m.safetensors"), "bsa_range='cosine' is not one of: gauss, dot"),
    Bad("train with a BSA --arch-arg on an SA variant", ("train", "--task", "digits", "--variant", "sa", "--arch-arg",
                                                         "bsa_spatial=false", "--out", "{out}/m.safetensors"),
        "bsa_spatial is for BSA variants, not --variant sa"),
    # outputs
    Bad("export of a text model", ("export", "wordnet-text-sa", "--to", "timm", "{out}/t"),
        "timm has no architecture to carry robench's text classifiers or language models"),
    Bad("export into a non-empty folder", ("export", "digits-vit-sa", "--to", "timm", "{bad}/jpegs"),
        "exists and is not empty; choose another folder or pass --force"),
    Bad("export to an unknown format", ("export", "digits-vit-sa", "--to", "onnx", "{out}/t"), "--to must be one of timm, hf"),
    Bad("export into a missing folder", (*EV, "--csv", "{out}/no/such/dir/rows.csv"), "does not exist; create it first"),
    Bad("export path is a folder", (*EV, "--csv", "{out}"), "is a directory; give a file path"),
    Bad("--out below a file", (*EV, "--out", "{bad}/empty.csv/records"), "is a file, not a directory"),
    Bad("unwritable export folder", (*EV, "--csv", "/proc/robench-rows.csv"), "cannot write in /proc"),
    Bad("--out holding another run", (*EV, "--seed", "1", "--out", "{bad}/other_run"), "holds records of a different run (seed: 0 there vs 1 now"),
    Bad("export path equal to --out", (*EV, "--out", "{out}/rec", "--csv", "{out}/rec"), "is the --out records directory"),
    Bad("two exports to one path", (*EV, "--csv", "{out}/same.out", "--json", "{out}/same.out"), "--csv and --json both write"),
    Bad("two exports on stdout", (*EV, "--csv", "-", "--json", "-"), "--csv and --json both write to stdout"),
    Bad("--plot on a language model", ("evaluate", "{bad}/lm.safetensors", "--dataset", "{bad}/lm.tokens", "--csv", "{out}/out.csv",
                                       "--plot", "{out}/p.png"), "language models give perplexity rows"),
    Bad("curve of a language model", ("curve", "{bad}/lm.safetensors", "--dataset", "{bad}/lm.tokens", "--threat", "word-swap",
                                      "--sweep", "rate=0,0.1"), "robench curve plots accuracy; lm is a language model"),
    Bad("leaderboard of a PNG", ("leaderboard", "{bad}/curve.png", "--csv", "{out}/rows.csv"), "is not UTF-8 text"),
    Bad("leaderboard of a folder", ("leaderboard", "{bad}/other_run", "--csv", "{out}/rows.csv"), "is a directory; robench reads result rows"),
]

CATALOGUE_BY_NAME = {b.what: b for b in CATALOGUE}

# run as real processes (see the tests below); listed here so the README table has them
PROCESS_ENTRIES = [
    Bad("disk full while writing", ("evaluate", "digits-vit-sa", "--out", "DIR"), "free disk space"),
    Bad("Ctrl-C (SIGINT) during a run", ("evaluate", "...", "--csv", "rows.csv"), "interrupted", 130),
]
API_ENTRIES = [
    Bad("model in training mode (Python API)", ("robench.evaluate(EvaluateArgs(models=[model]))",), "is in training mode"),
]


def _bad_text_files(d: Path) -> None:
    """Tables, JSON lines, label files and an MNIST download as users get them wrong."""
    import gzip

    (d / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"a plant number {i}\t{i % 2}\n" for i in range(20)))
    (d / "one.tsv").write_text("sentence\tlabel\na lone gloss\t0\n")
    (d / "cp1252.csv").write_bytes("sentence,label\nun café noir,0\nthé vert,1\n".encode("cp1252"))
    (d / "cp1252.jsonl").write_bytes('{"text": "un café noir", "label": 0}\n'.encode("cp1252"))
    (d / "two_label_headers.tsv").write_text("sentence\tlabel\tlabel\na gloss\t0\t1\n")
    (d / "extra_field.tsv").write_text("sentence\tlabel\na gloss\t0\nanother\tgloss\t1\n")
    (d / "questions.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in [
        ("What is a caldera ?", "DESC"), ("Who killed Gandhi ?", "HUM"), ("What is an atom ?", "DESC")]))
    (d / "desc.labels").write_text("DESC\nNUM\n")
    (d / "twice.labels").write_text("DESC\nHUM\nHUM\n")
    (d / "mnist").mkdir()
    images = bytes([0, 0, 8, 3]) + b"".join(k.to_bytes(4, "big") for k in (30, 8, 8)) + os.urandom(30 * 64)
    (d / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(images)[:-40])  # a download cut short
    (d / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (30).to_bytes(4, "big")
                                                                         + bytes(i % 10 for i in range(30))))


def _safetensors_dataset(path: Path, images: torch.Tensor, labels: torch.Tensor) -> None:
    from safetensors.torch import save_file

    names = [str(i) for i in range(10)]
    save_file({"images": images.contiguous(), "labels": labels, "ids": torch.arange(len(labels))}, str(path),
              metadata={"format": "robench-adversarial", "labels": json.dumps(names), "split": "test"})


def _timm_folders(d: Path) -> None:
    """timm hub-layout folders (timm's save_for_hf) of a 5-class 8 x 8 model, one broken per way."""
    import timm
    from timm.models import save_for_hf

    import robench.models.timm_models  # noqa: F401

    net = timm.create_model("robench_vit_sa", img_size=8, patch_size=4, in_chans=1, num_classes=5, embed_dim=16,
                            depth=1, num_heads=2)
    save_for_hf(net, str(d / "timm_5classes"), safe_serialization=True)
    config = json.loads((d / "timm_5classes" / "config.json").read_text())
    for name in ("timm_noconfig", "timm_noarch", "timm_unknown", "timm_noweights"):
        shutil.copytree(d / "timm_5classes", d / name)
    (d / "timm_noconfig" / "config.json").unlink()
    (d / "timm_noarch" / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "architecture"}))
    (d / "timm_unknown" / "config.json").write_text(json.dumps({**config, "architecture": "no_such_net"}))
    (d / "timm_noweights" / "model.safetensors").unlink()


def _tiny_language_model(d: Path) -> None:
    """``lm.safetensors`` (+ card) trained for one epoch on ``lm.tokens``, 60 lines of a 30-word language."""
    import random

    from robench.training.classifier import TrainArgs, train

    rng = random.Random(0)
    words = [f"w{i}" for i in range(30)]
    (d / "lm.tokens").write_text("".join(" ".join(rng.choice(words) for _ in range(10)) + "\n" for _ in range(60)))
    train(TrainArgs(task="lm", variant="sa", data=str(d / "lm.tokens"), eval_data=str(d / "lm.tokens"), epochs=1,
                    embed_dim=16, depth=1, num_heads=2), d / "lm")


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    """A folder of prepared bad files (made once for the whole catalogue)."""
    from robench.checkpoint.io import save_checkpoint
    from robench.models.loading import load_model

    d = tmp_path_factory.mktemp("bad")
    weights, card = ZOO / "digits-vit-sa.safetensors", ZOO / "digits-vit-sa.json"
    for name in ("corrupt", "truncated", "lying", "mismatch", "othercard", "badjson", "nocard"):
        shutil.copy(weights, d / f"{name}.safetensors")
        if name != "nocard":
            shutil.copy(card, d / f"{name}.json")
    (d / "corrupt.safetensors").write_bytes(os.urandom(4096))
    data = weights.read_bytes()
    (d / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}).encode()
    (d / "lying.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(64))
    c = json.loads(card.read_text())
    c["architecture"]["embed_dim"] *= 2
    (d / "mismatch.json").write_text(json.dumps(c))
    c = json.loads(card.read_text())
    c["weights_sha256"] = "0" * 64
    (d / "othercard.json").write_text(json.dumps(c))
    (d / "badjson.json").write_text("{not json")
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {d}/pwned",))

    (d / "evil.pt").write_bytes(pickle.dumps({"w": Evil()}))
    shutil.copy(card, d / "evil.json")
    model = load_model("digits-vit-sa")
    net = model.module.net
    with torch.no_grad():
        net.head.weight.mul_(1e38)  # finite weights, infinite logits
    from robench.checkpoint.card import Card

    save_checkpoint(net, Card.read(card), d / "inf.safetensors")
    (d / "empty.csv").write_text("sentence,label\n")
    (d / "five_labels.csv").write_text("sentence,label\n" + "".join(f"a gloss number {i},{i % 5}\n" for i in range(30)))
    _bad_text_files(d)
    x = torch.rand(30, 1, 8, 8)
    y = torch.arange(30) % 10
    _safetensors_dataset(d / "label_range.safetensors", x, torch.where(y == 3, 10, y))
    _safetensors_dataset(d / "pixels255.safetensors", x * 255, y)
    _safetensors_dataset(d / "nan_pixels.safetensors", torch.where(x > 0.99, float("nan"), x), y)
    _safetensors_dataset(d / "big_images.safetensors", torch.rand(30, 1, 16, 16), y)
    from imagetrees import make_tree  # a mixed-size folder with one JPEG cut in half

    jpgs = [f for f in make_tree(d / "jpegs", [str(i) for i in range(10)], 2, seed=12) if f.suffix == ".jpg"]
    cut = d / "jpegs" / "7" / "img1.jpg"
    if cut not in jpgs:  # make sure the cut file is a JPEG, whatever mode the generator drew for it
        for f in (d / "jpegs" / "7").glob("img1.*"):
            f.unlink()
        from PIL import Image

        Image.new("RGB", (40, 30), (120, 60, 30)).save(cut, quality=90)
    cut.write_bytes(cut.read_bytes()[: len(cut.read_bytes()) // 2])
    (d / "empty.pt").write_bytes(b"")
    torch.save({}, d / "nothing.pt")
    (d / "curve.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(256))
    _tiny_language_model(d)
    from hfdirs import bad_hf_dirs

    bad_hf_dirs(d)
    _timm_folders(d)
    from conftest import run_cli

    proc = run_cli("evaluate", "digits-vit-sa", "-n", "20", "--suite", "clean", "--out", str(d / "other_run"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return d


def run_inprocess(argv: list[str], capsys) -> tuple[int, str, str]:
    from robench.cli.app import main

    old = sys.argv
    sys.argv = ["robench", *argv]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err


def _files(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@pytest.mark.parametrize("entry", CATALOGUE, ids=[b.what for b in CATALOGUE])
def test_bad_input(entry: Bad, bad: Path, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    before = _files(bad)
    argv = entry.argv(bad, out)
    if entry.args[0] in ("evaluate", "attack", "curve") and not any(a in ("--csv", "--out") for a in entry.args):
        # every run asks for outputs: none may appear
        argv += ["--csv", str(out / "rows.csv"), "--json", str(out / "rows.json"), "--out", str(out / "records")]
    code, stdout, stderr = run_inprocess(argv, capsys)
    proc = subprocess.CompletedProcess(argv, code, stdout, stderr)
    assert_one_line_error(proc, entry.fragment, entry.code)
    assert _files(out) == []
    assert _files(bad) == before  # nothing written beside the inputs either (e.g. --out holding another run)
    assert not (bad / "pwned").exists()


def test_refusals_come_before_any_model_work(bad, tmp_path, monkeypatch, capsys):
    """A recipe needing a download, and --plot on a language model, are refused before the clean pass
    (or the perplexity pass): a long run must not fail hours in."""
    import robench.engine.evaluate
    import robench.lm.perplexity

    def no_work(*args, **kwargs):
        raise AssertionError("model work started before the refusal")

    monkeypatch.setattr(robench.engine.evaluate, "prepare", no_work)
    monkeypatch.setattr(robench.lm.perplexity, "evaluate_lm", no_work)
    for entry in (CATALOGUE_BY_NAME["textattack recipe needing a download"], CATALOGUE_BY_NAME["--plot on a language model"]):
        code, _, err = run_inprocess(entry.argv(bad, tmp_path), capsys)
        assert code == 2 and entry.fragment in err, err


def test_catalogue_has_30_distinct_entries():
    entries = CATALOGUE + PROCESS_ENTRIES + API_ENTRIES
    assert len({b.what for b in entries}) == len(entries) >= 30


@pytest.mark.slow
def test_disk_full_while_writing_records(tmp_path):
    """RLIMIT_FSIZE makes writes past 16 KB fail as a full disk would (CPython ignores SIGXFSZ)."""
    out = tmp_path / "records"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000))

    proc = subprocess.run([sys.executable, "-m", "robench", "evaluate", "digits-vit-sa", "--suite", "clean", "--out", str(out),
                           "--json", str(tmp_path / "rows.json")], cwd=REPO, capture_output=True, text=True, preexec_fn=limit,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, timeout=300)
    assert_one_line_error(proc, PROCESS_ENTRIES[0].fragment)
    assert "File too large" in proc.stderr
    assert [p.name for p in out.iterdir()] == ["run.json"]  # the records file was never half-written
    assert not (tmp_path / "rows.json").exists()


def test_ctrl_c_exits_130_with_one_line_and_no_export(tmp_path):
    out, csv = tmp_path / "records", tmp_path / "rows.csv"
    proc = subprocess.Popen([sys.executable, "-m", "robench", "evaluate", "digits-vit-sa", "--threat", "pgd:eps=0.1,steps=50",
                             "--batch-size", "8", "--out", str(out), "--csv", str(csv), "--quiet"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    deadline = time.time() + 120
    while not list(out.glob("*.journal")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    journaled, running = bool(list(out.glob("*.journal"))), proc.poll() is None
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    # which way a failure went: the run ended before a journal was seen, or it outlived the signal
    assert journaled and running, f"no interrupt sent (journal seen: {journaled}, still running: {running})"
    assert_one_line_error(subprocess.CompletedProcess([], proc.returncode, stdout, stderr), PROCESS_ENTRIES[1].fragment, 130)
    assert not csv.exists()
    assert list(out.glob("*.journal"))  # what was done is kept for the resume


def test_a_bug_is_one_line_exit_1(monkeypatch, capsys):
    """Anything that is not bad input is a bug: one line naming it, exit 1, the traceback on demand."""
    import robench.engine.evaluate

    def broken(*args, **kwargs):
        raise ValueError("something robench did not expect")

    monkeypatch.setattr(robench.engine.evaluate, "evaluate", broken)
    code, _, err = run_inprocess(["evaluate", "digits-vit-sa"], capsys)
    assert_one_line_error(subprocess.CompletedProcess([], code, "", err), "internal error: ValueError: something robench did not expect", 1)
    assert "ROBENCH_DEBUG=1" in err


def test_model_in_training_mode_is_refused():
    from robench.errors import RobenchError
    from robench.engine.evaluate import EvaluateArgs, evaluate
    from robench.models.loading import load_model

    model = load_model("digits-vit-sa")
    model.module.train()
    with pytest.raises(RobenchError, match=API_ENTRIES[0].fragment):
        evaluate(EvaluateArgs(models=[model], num_examples=20, suite="clean"))


def catalogue_markdown() -> str:
    """The README table (regenerate with ``PYTHONPATH=.:tests python -c 'from test_bad_inputs import catalogue_markdown as m; print(m())'``)."""
    lines = ["| # | bad input | example | exit | the stderr line contains |", "|---|---|---|---|---|"]
    for k, b in enumerate(CATALOGUE + PROCESS_ENTRIES + API_ENTRIES, 1):
        example = " ".join(b.args).replace("{bad}/", "").replace("{out}", "OUT")
        example = example if example.startswith("robench.") else "robench " + example
        lines.append(f"| {k} | {b.what} | `{example}` | {b.code} | {b.fragment.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def test_readme_table_is_the_catalogue():
    readme = (REPO / "README.md").read_text()
    start, end = "<!-- bad-inputs:start -->\n", "<!-- bad-inputs:end -->"
    assert start in readme and end in readme
    assert readme.split(start)[1].split(end)[0] == catalogue_markdown()
