"""Real label sets: string labels, --labels files, evaluation data missing classes, cards that find
their data from any directory, and the text-table options of `robench train`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import REPO, assert_one_line_error
from robench.data.base import TEXT, Dataset
from robench.data.labels import align_labels, infer_labels
from robench.data.registry import load_dataset
from robench.errors import RobenchError

TINY = ["--epochs", "1", "--embed-dim", "16", "--depth", "1", "--heads", "2", "--device", "cpu", "--quiet"]
HERE = {"PYTHONPATH": str(REPO)}  # a subprocess started elsewhere must still import this checkout's robench


def _ds(labels: list[str], targets: list[int]) -> Dataset:
    sentinel = object()  # align_labels must never read the inputs (images may be streamed)
    return Dataset(name="d", task=TEXT, split="test", labels=labels, inputs=sentinel, targets=torch.tensor(targets),
                   ids=list(range(len(targets))), sha256="abc")


def test_infer_labels_integers_are_positions_strings_are_sorted_names():
    y, names = infer_labels(["2", "0", "2"], "t")
    assert names == ["0", "1", "2"] and y.tolist() == [2, 0, 2]
    y, names = infer_labels(["HUM", "DESC", "NUM", "DESC"], "t")
    assert names == ["DESC", "HUM", "NUM"] and y.tolist() == [1, 0, 2, 0]
    y, names = infer_labels(["1", "pos"], "t")  # not all integers: every value is a name
    assert names == ["1", "pos"] and y.tolist() == [0, 1]
    with pytest.raises(RobenchError, match="integer labels must be 0..K-1, found -1"):
        infer_labels(["0", "-1"], "t")


def test_align_labels_maps_by_name_and_integers_by_position():
    model = ["DESC", "HUM", "NUM"]
    no_first = align_labels(_ds(["HUM", "NUM"], [1, 0, 1]), model)  # class 0 (DESC) missing
    assert no_first.labels == model and no_first.targets.tolist() == [2, 1, 2]
    no_last = align_labels(_ds(["DESC", "HUM"], [0, 1]), model)  # the highest class missing
    assert no_last.targets.tolist() == [0, 1]
    swapped = align_labels(_ds(["NUM", "HUM", "DESC"], [0, 2]), model)  # a --labels order: still by name
    assert swapped.targets.tolist() == [2, 0]
    ints = align_labels(_ds(["0", "1"], [1, 0]), model)  # integer labels carry no names: positions
    assert ints.labels == model and ints.targets.tolist() == [1, 0]
    named_ints = align_labels(_ds(["0", "1", "2"], [1, 2]), ["2", "1"])  # integer names that are the model's: by name
    assert named_ints.targets.tolist() == [1, 0]
    same = _ds(model, [0])
    assert align_labels(same, model) is same
    with pytest.raises(RobenchError, match=r"has labels model m does not know: 'ABBR', 'LOC' \(its labels: 'DESC', 'HUM', 'NUM'\)"):
        align_labels(_ds(["ABBR", "DESC", "LOC"], [0, 1, 2]), model, "model m")
    with pytest.raises(RobenchError, match=r"has integer labels 3, 4 but model m has 3 classes \(0..2\)"):
        align_labels(_ds([str(i) for i in range(5)], [0, 3, 4]), model, "model m")
    # a name the data lists but never uses is not an error
    assert align_labels(_ds(["DESC", "LOC"], [0, 0]), model).targets.tolist() == [0, 0]


def test_align_labels_never_reads_inputs():
    ds = _ds(["HUM"], [0, 0])
    out = align_labels(ds, ["DESC", "HUM"])
    assert out.inputs is ds.inputs and out.sha256 == ds.sha256 and out.ids == ds.ids


def test_string_labels_in_tables_and_json_lines(tmp_path):
    tsv = tmp_path / "q.tsv"
    tsv.write_text("sentence\tlabel\nhow far is it ?\tNUM\nwhat is a caldera ?\tDESC\nwho killed gandhi ?\tHUM\n\n")
    ds = load_dataset(str(tsv))
    assert ds.labels == ["DESC", "HUM", "NUM"] and ds.targets.tolist() == [2, 0, 1]
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in [("what is x ?", "DESC"), ("who ?", "HUM")]))
    ds = load_dataset(str(jsonl))
    assert ds.labels == ["DESC", "HUM"] and ds.targets.tolist() == [0, 1] and ds.inputs == ["what is x ?", "who ?"]
    flags = tmp_path / "b.jsonl"
    flags.write_text('{"text": "a", "label": true}\n{"text": "b", "label": false}\n')
    ds = load_dataset(str(flags))
    assert ds.labels == ["false", "true"] and ds.targets.tolist() == [1, 0]
    missing = tmp_path / "m.jsonl"
    missing.write_text('{"text": "a", "label": "X"}\n{"text": "b", "label": null}\n')
    with pytest.raises(RobenchError, match="example 1 has no label"):
        load_dataset(str(missing))


def test_labels_file_fixes_the_order(tmp_path):
    tsv = tmp_path / "q.tsv"
    tsv.write_text("sentence\tlabel\nhow far ?\tNUM\nwhat is ?\tDESC\n")
    order = tmp_path / "classes.txt"
    order.write_text("\ufeffNUM\nHUM\n\nDESC\n")  # a BOM and a blank line are harmless
    ds = load_dataset(str(tsv), columns={"labels": str(order)})
    assert ds.labels == ["NUM", "HUM", "DESC"] and ds.targets.tolist() == [0, 2]
    ints = tmp_path / "i.tsv"  # integer labels with a names file: the integers are positions (GLUE style)
    ints.write_text("sentence\tlabel\nbad film\t0\ngood film\t1\n")
    names = tmp_path / "sst2.txt"
    names.write_text("negative\npositive\n")
    ds = load_dataset(str(ints), columns={"labels": str(names)})
    assert ds.labels == ["negative", "positive"] and ds.targets.tolist() == [0, 1]
    with pytest.raises(RobenchError, match="--labels file .* is empty"):
        (tmp_path / "e.txt").write_text("\n")
        load_dataset(str(tsv), columns={"labels": str(tmp_path / "e.txt")})


def test_table_reading_bom_quotes_and_line_numbers(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffsentence,label\n\"a, quoted text\",1\nplain,0\n".encode("utf-8"))
    ds = load_dataset(str(bom))
    assert ds.inputs == ["a, quoted text", "plain"] and ds.targets.tolist() == [1, 0]
    gap = tmp_path / "gap.tsv"
    gap.write_text("sentence\tlabel\na\t0\nb\t\n")
    with pytest.raises(RobenchError, match=r"gap.tsv line 3: the 'label' field is empty"):
        load_dataset(str(gap))
    short = tmp_path / "short.csv"
    short.write_text("sentence,label\na,0\nno label here\n")
    with pytest.raises(RobenchError, match=r"short.csv line 3: 1 fields but the header has 2 \(sentence, label\); quote a text"):
        load_dataset(str(short))


def test_split_on_a_file_is_refused_but_applies_to_named_splits(tmp_path):
    from robench.data.registry import check_split, takes_split

    tsv = tmp_path / "dev.tsv"
    tsv.write_text("sentence\tlabel\na\t0\n")
    assert not takes_split(str(tsv)) and not takes_split(f"{tsv}[:1]") and not takes_split("x-images-idx3-ubyte.gz")
    assert takes_split("digits") and takes_split("hf:glue:sst2")
    check_split(str(tsv), "test")  # the default: nothing chosen, nothing refused
    with pytest.raises(RobenchError, match="--split train: dataset .*dev.tsv is a single file"):
        check_split(str(tsv), "train")


def _table(path: Path, rows: list[tuple[str, str]], header: str = "sentence,label") -> None:
    path.write_text(header + "\n" + "".join(f"{t},{y}\n" for t, y in rows))


@pytest.mark.slow
def test_evaluate_data_missing_classes_matches_direct_predictions(tmp_path, cli):
    """A file lacking the model's class 0, one lacking its last class, and the same with a --labels
    file in another order: clean accuracy equals predictions compared by label name."""
    from robench.models.loading import load_model

    model = load_model("wordnet-text-sa")
    vocab = [w for w in model.card.preprocessing["vocab"][2:300] if w.isalpha()]
    texts = [" ".join(vocab[(7 * i + k) % len(vocab)] for k in range(6)) for i in range(60)]
    with torch.no_grad():
        preds = [model.labels[p] for p in model.module.predict_texts(texts).argmax(-1).tolist()]
    for dropped in ("noun.animal", "noun.plant"):
        names = [n for n in model.labels if n != dropped]
        # gold: the model's own prediction for 3 rows in 4, another class for the 4th, so that only
        # the by-name mapping gives the expected accuracy (positions would shift every name by one)
        kept = [(t, p) for t, p in zip(texts, preds) if p != dropped][:24]
        gold = [p if i % 4 else names[(names.index(p) + 1) % 3] for i, (_, p) in enumerate(kept)]
        path = tmp_path / f"no-{dropped}.csv"
        _table(path, [(t, g) for (t, _), g in zip(kept, gold)])
        expected = sum(p == g for (_, p), g in zip(kept, gold)) / len(gold)
        assert len(gold) == 24 and expected == 0.75 and len(set(gold)) == 3
        order = tmp_path / "order.txt"
        order.write_text("\n".join(reversed(names)) + "\n")
        for extra in ([], ["--labels", str(order)]):
            proc = cli("evaluate", "wordnet-text-sa", "--dataset", str(path), *extra, "--suite", "clean", "--device", "cpu",
                       "--json", "-")
            assert proc.returncode == 0, proc.stderr
            (row,) = json.loads(proc.stdout)
            assert row["n"] == 24 and row["clean_acc"] == pytest.approx(expected, abs=1e-6), (dropped, extra)


@pytest.mark.slow
def test_train_on_named_columns_and_string_labels_then_evaluate_anywhere(tmp_path, cli):
    data = tmp_path / "proj" / "data"
    models = tmp_path / "proj" / "models"
    data.mkdir(parents=True)
    models.mkdir()
    kinds = {"NUM": "how many much far long", "DESC": "what is define meaning explain", "HUM": "who person name man woman"}
    rows = [(" ".join(kinds[k].split()[(i + j) % 5] for j in range(4)) + " ?", k) for i in range(30) for k in kinds]
    _table(data / "train.csv", rows, "question,category")
    _table(data / "test.csv", [r for r in rows[:30] if r[1] != "DESC"], "question,category")  # no DESC (class 0)
    out = models / "q.safetensors"
    proc = cli("train", "--task", "data/train.csv", "--eval-data", "data/test.csv[2:]", "--text-column", "question",
               "--label-column", "category", "--vocab-size", "12", "--max-length", "6", "--variant", "sa",
               "--out", "models/q.safetensors", *TINY[:-1], cwd=tmp_path / "proj", env=HERE)
    assert proc.returncode == 0, proc.stderr
    assert "3 classes: DESC, HUM, NUM" in proc.stdout
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["labels"] == ["DESC", "HUM", "NUM"]
    tr, ev = card["training"], card["evaluation"]
    assert (tr["text_column"], tr["label_column"], tr["vocab_size"], tr["max_length"]) == ("question", "category", 12, 6)
    assert card["preprocessing"]["max_length"] == 6 and len(card["preprocessing"]["vocab"]) == 12
    assert tr["dataset"] == "data/train.csv" and tr["dataset_path"] == str(data / "train.csv")
    assert ev["dataset"] == "data/test.csv[2:]" and ev["dataset_card_path"] == "../data/test.csv[2:]"
    assert ev["dataset_path"] == f"{data / 'test.csv'}[2:]" and ev["n"] == 18

    def evaluate_from(where: Path, ckpt: Path):
        # no --text-column/--label-column: the card's columns serve its own data
        return cli("evaluate", str(ckpt), "--suite", "clean", "--device", "cpu", "--csv", "-", cwd=where, env=HERE)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = evaluate_from(elsewhere, out)  # the absolute path
    assert proc.returncode == 0, proc.stderr
    row = proc.stdout.splitlines()[1].split(",")
    assert row[3] == "data/test.csv[2:]" and row[5] == "18"  # rows keep the card's name for the data
    assert float(row[7]) == pytest.approx(ev["clean_accuracy"], abs=1e-6)
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "proj", moved)  # data and models moved together: the card-relative path
    proc = evaluate_from(elsewhere, moved / "models" / "q.safetensors")
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.splitlines()[1].split(",")[7]) == pytest.approx(ev["clean_accuracy"], abs=1e-6)
    shutil.rmtree(moved / "data")
    proc = evaluate_from(elsewhere, moved / "models" / "q.safetensors")
    assert_one_line_error(proc, "the card names dataset 'data/test.csv[2:]', which is not here (looked for ")


def test_sources_resolve_absolute_then_card_relative_then_the_name(tmp_path):
    from robench.data.card_paths import locate, resolve

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.tsv").write_text("")
    card = tmp_path / "m" / "c.json"
    card.parent.mkdir()
    fields = locate(str(tmp_path / "d" / "x.tsv") + "[:5]", card)
    assert fields == {"dataset_path": f"{tmp_path}/d/x.tsv[:5]", "dataset_card_path": "../d/x.tsv[:5]"}
    assert locate("digits", card) == {} and locate("hf:imdb", card) == {}
    section = {"dataset": "x.tsv[:5]", **fields}
    assert resolve(section, card) == f"{tmp_path}/d/x.tsv[:5]"
    section["dataset_path"] = "/nowhere/x.tsv[:5]"
    assert resolve(section, card) == f"{tmp_path}/d/x.tsv[:5]"  # found beside the card
    assert resolve({"dataset": "digits"}, card) == "digits"  # the zoo's cards: the name as given
    with pytest.raises(RobenchError, match="which is not here"):
        resolve(section, tmp_path / "c.json")


def test_n_above_the_split_size_is_one_note(cli):
    proc = cli("evaluate", "digits-vit-sa", "-n", "100000", "--suite", "clean", "--device", "cpu", "--csv", "-")
    assert proc.returncode == 0, proc.stderr
    notes = [l for l in proc.stderr.splitlines() if "note:" in l]
    assert notes == ["robench: note: -n 100000 is more than the 359 examples of digits (test); using all 359"]
    assert proc.stdout.splitlines()[1].split(",")[5] == "359"


def test_corrupt_idx_gzip_is_bad_input(tmp_path):
    import gzip

    from robench.data.images import _read_idx

    raw = gzip.compress(bytes([0, 0, 8, 1]) + (4000).to_bytes(4, "big") + bytes(range(250)) * 16)
    broken = bytearray(raw)
    broken[20:40] = bytes(20)  # the deflate stream itself
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(bytes(broken))
    with pytest.raises(RobenchError, match="is (corrupt|unreadable or not gzip)"):
        _read_idx(path)
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RobenchError, match="is truncated"):
        _read_idx(path)
