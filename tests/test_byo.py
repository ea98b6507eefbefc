"""Bring your own: timm models, plain state dicts with --arch, idx/image-folder/JSON datasets,
hub names offline, and the preprocessing probe."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, assert_one_line_error
from robench.data.registry import load_dataset
from robench.errors import RobenchError
from robench.models.loading import LoadedModel, load_model
from robench.models.wrappers import ImageClassifier
from robench.checks.probe import probe_preprocessing


def test_timm_vit_round_trip_identical_logits(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=4, depth=2).eval()
    path = tmp_path / "vit.safetensors"
    save_file({f"module.{k}": v.contiguous() for k, v in vit.state_dict().items()}, str(path))  # DataParallel-style keys
    loaded = load_model(f"timm:vit_tiny_patch16_224={path}", labels=list("abcd"), model_args={"depth": 2})
    cfg = timm.data.resolve_data_config({}, model=vit)
    assert loaded.card.preprocessing["mean"] == list(cfg["mean"]) and loaded.card.preprocessing["size"] == [224, 224]
    x = torch.rand(2, 3, 224, 224)
    mean, std = torch.tensor(cfg["mean"])[None, :, None, None], torch.tensor(cfg["std"])[None, :, None, None]
    with torch.no_grad():
        assert torch.equal(loaded.module(x), vit((x - mean) / std))


def test_timm_head_size_mismatch_is_reported_not_reinitialised(tmp_path):
    import timm
    from safetensors.torch import save_file

    vit = timm.create_model("vit_tiny_patch16_224", num_classes=4, depth=1)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    with pytest.raises(RobenchError, match=r"shape mismatches: head.bias \(4,\) vs card \(10,\)"):
        load_model(f"timm:vit_tiny_patch16_224={path}", labels=[str(i) for i in range(10)], model_args={"depth": 1})
    with pytest.raises(RobenchError, match="unknown timm model 'no_such_net'"):
        load_model("timm:no_such_net", labels=["a", "b"])


@pytest.mark.slow
def test_state_dict_with_arch_and_prefixes(tmp_path, cli):
    ref = load_model("digits-vit-bsa")
    pt = tmp_path / "weights.pt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in ref.module.net.state_dict().items()}}, pt)
    loaded = load_model(str(pt), arch="digits-vit-bsa")
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), ref.module(x))
    rows = tmp_path / "r.json"
    proc = cli("evaluate", str(pt), "--arch", "digits-vit-bsa", "--dataset", "digits", "--suite", "clean",
               "--device", "cpu", "--json", str(rows))
    assert proc.returncode == 0, proc.stderr
    card = json.loads((load_model.__globals__["zoo_dir"]() / "digits-vit-bsa.json").read_text())
    assert json.loads(rows.read_text())[0]["clean_acc"] == pytest.approx(card["evaluation"]["clean_accuracy"], abs=1e-6)
    partial = tmp_path / "partial.pt"
    state = ref.module.net.state_dict()
    torch.save({k: v for k, v in state.items() if not k.startswith("head.")}, partial)
    proc = cli("evaluate", str(partial), "--arch", "digits-vit-bsa", "--dataset", "digits", "--device", "cpu")
    assert_one_line_error(proc, "missing keys ['head.bias', 'head.weight']")


def test_mnist_idx_loads_with_counts_and_balance():
    path = SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz"
    if not path.is_file():
        pytest.skip("../shared/data/mnist not present")
    ds = load_dataset(str(path))
    assert len(ds) == 10_000 and tuple(ds.inputs.shape[1:]) == (1, 28, 28)
    assert ds.targets.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert float(ds.inputs.min()) == 0.0 and float(ds.inputs.max()) == 1.0


def test_image_folder_dataset(tmp_path, cli):
    from PIL import Image

    digits = load_dataset("digits", "test")
    root = tmp_path / "imgs"
    for i in range(30):
        d = root / str(int(digits.targets[i]))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((digits.inputs[i, 0].numpy() * 255).round().astype("uint8")).save(d / f"{i}.png")
    ds = load_dataset(str(root))
    assert len(ds) == 30 and ds.labels == sorted({str(int(t)) for t in digits.targets[:30]})
    # evaluate refuses a label set that differs from the model's, naming the difference
    if len(ds.labels) != 10:
        proc = cli("evaluate", "digits-vit-sa", "--dataset", str(root), "--device", "cpu")
        assert_one_line_error(proc, "has 10 labels but dataset")
    # lazy: nothing decoded until a batch needs it; then exactly the 8-bit pixels that were saved
    from robench.data.loader import Feed
    from robench.data.preprocess import Preprocessing

    assert ds.lazy
    x = Feed(Preprocessing(channels=1, size=(8, 8)), torch.device("cpu")).tensor(ds)
    order = [int(p.split("/")[1].removesuffix(".png")) for p in ds.inputs.paths]
    assert torch.equal(x, (digits.inputs[order] * 255).round() / 255)
    # images of another size are resized to the model's (timm's eval transform), not refused
    (root / "x").mkdir()
    Image.fromarray(np.zeros((5, 5), dtype="uint8")).save(root / "x" / "odd.png")
    mixed = load_dataset(str(root))
    assert len(mixed) == 31 and "x" in mixed.labels
    odd = mixed.inputs.paths.index("x/odd.png")
    assert Feed(Preprocessing(channels=1, size=(8, 8)), torch.device("cpu")).tensor(mixed, [odd]).shape == (1, 1, 8, 8)


@pytest.mark.slow
def test_json_dataset_with_columns(tmp_path, cli, wordnet_available):
    from robench.data.base import stratified_sample

    test = load_dataset("wordnet-topics", "test")
    sub = test.subset(stratified_sample(test.targets, 200, seed=0))
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"gloss": t, "y": int(y)}) + "\n" for t, y in zip(sub.inputs, sub.targets)))
    rows = tmp_path / "r.json"
    proc = cli("evaluate", "wordnet-text-sa", "--dataset", str(path), "--text-column", "gloss", "--label-column", "y",
               "--suite", "clean", "--device", "cpu", "--json", str(rows))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(rows.read_text())[0]
    model = load_model("wordnet-text-sa")
    with torch.no_grad():
        expected = float((model.module.predict_texts(sub.inputs).argmax(-1) == sub.targets).float().mean())
    assert got["n"] == 200 and got["clean_acc"] == pytest.approx(expected, abs=1e-6)
    proc = cli("evaluate", "wordnet-text-sa", "--dataset", str(path), "--suite", "clean", "--device", "cpu")
    assert_one_line_error(proc, "no label column")


def test_hub_dataset_offline_fails_fast(cli):
    start = time.monotonic()
    proc = cli("evaluate", "digits-vit-sa", "--dataset", "hf:mnist", "--device", "cpu", env={"HF_HUB_OFFLINE": ""})
    elapsed = time.monotonic() - start
    assert_one_line_error(proc, "the Hugging Face hub is not reachable (offline)")
    assert elapsed < 20  # not datasets' retry loop (subprocess start-up included)


class IntensityBins(torch.nn.Module):
    """A model whose prediction is the decile of an image's mean intensity, computed from its
    *normalised* input (contract mean m, std s): it needs exactly that normalisation."""

    def __init__(self, m: float, s: float) -> None:
        super().__init__()
        self.m, self.s = m, s
        self.register_buffer("centres", (torch.arange(10) + 0.5) / 10)

    def forward(self, z):
        v = z.mean(dim=(1, 2, 3)) * self.s + self.m  # back to [0, 1] intensity
        return -(v[:, None] - self.centres[None]) ** 2


def _intensity_data(n: int = 500):
    from robench.data.base import IMAGE, Dataset

    v = torch.rand(n, generator=torch.Generator().manual_seed(0))
    x = v[:, None, None, None].expand(n, 1, 4, 4).clone()
    y = (v * 10).long().clamp(max=9)
    return Dataset("intensity", IMAGE, "test", [str(i) for i in range(10)], x, y, list(range(n)), "")


def _model(module) -> LoadedModel:
    card = load_model("digits-vit-sa").card
    return LoadedModel(name="intensity", module=module, card=card, sha256="")


def test_probe_names_the_preprocessing_mistake():
    ds = _intensity_data()
    net = IntensityBins(0.5, 0.29)
    correct = ImageClassifier(net, [0.5], [0.29])
    assert probe_preprocessing(_model(correct), ds, expected=0.99) is None
    twice = ImageClassifier(correct, [0.5], [0.29])  # the wrapper normalises inputs that are normalised already
    w = probe_preprocessing(_model(twice), ds, expected=0.99)
    assert w is not None and "normalisation is applied twice" in w
    missing = ImageClassifier(net, [0.0], [1.0])  # a contract without the normalisation the model needs
    w = probe_preprocessing(_model(missing), ds, expected=0.99)
    assert w is not None and "normalisation is missing" in w


@pytest.mark.slow
def test_probe_warning_in_cli_for_permuted_labels(tmp_path, cli, wordnet_available):
    from robench.data.base import stratified_sample

    test = load_dataset("wordnet-topics", "test")
    sub = test.subset(stratified_sample(test.targets, 200, seed=0))
    path = tmp_path / "permuted.csv"
    path.write_text("text,label\n" + "".join(f'"{t}",{(int(y) + 1) % 4}\n' for t, y in zip(sub.inputs, sub.targets)))
    proc = cli("evaluate", "wordnet-text-sa", "--dataset", str(path), "--suite", "clean", "--expect-accuracy", "0.85",
               "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    warnings = [l for l in proc.stderr.splitlines() if l.startswith("robench: warning:")]
    assert len(warnings) == 1 and "label order differs" in warnings[0]
    proc = cli("evaluate", "wordnet-text-sa", "--suite", "clean", "-n", "200", "--device", "cpu")
    assert "robench: warning:" not in proc.stderr  # the right data: no warning


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory, wordnet_available):
    """A tiny BERT with a WordPiece tokenizer trained here on wordnet-topics (no downloads)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    train = load_dataset("wordnet-topics", "train")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(train.inputs, trainers.WordPieceTrainer(
        vocab_size=600, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    fast = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]", do_lower_case=True, model_max_length=64)
    fast._tokenizer.post_processor = __import__("tokenizers").processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", fast.cls_token_id), ("[SEP]", fast.sep_token_id)])
    torch.manual_seed(0)
    config = BertConfig(vocab_size=fast.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=4,
                        id2label=dict(enumerate(train.labels)), label2id={l: i for i, l in enumerate(train.labels)})
    model = BertForSequenceClassification(config).eval()
    d = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(d)
    fast.save_pretrained(d)
    return d, model, fast


def test_hf_dir_identical_logits(tiny_bert_dir):
    d, model, tok = tiny_bert_dir
    loaded = load_model(f"hf:{d}")
    texts = ["a member of the genus Canis", "a small open container for drinking", "x"]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(**enc).logits
        got = loaded.module.predict_texts(texts)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    assert loaded.labels == ["noun.animal", "noun.artifact", "noun.food", "noun.plant"]
    assert loaded.card.preprocessing["tokenizer"] == "hf"


@pytest.mark.slow
def test_hf_dir_under_text_threats(tiny_bert_dir, tmp_path, cli):
    d, _, _ = tiny_bert_dir
    rows = tmp_path / "r.json"
    proc = cli("evaluate", f"hf:{d}", "--dataset", "wordnet-topics", "-n", "40", "--threat", "pwws-fast",
               "--threat", "pwws", "--threat", "typo:rate=0.2", "--device", "cpu", "--json", str(rows))
    assert proc.returncode == 0, proc.stderr
    got = {r["threat"].split(":")[0]: r for r in json.loads(rows.read_text())}
    assert set(got) == {"none", "pwws-fast", "pwws", "typo"}
    assert all(r["attacked_acc"] <= got["none"]["clean_acc"] for r in got.values())
    # the whole-text path of pwws-fast still follows textattack's search
    assert abs(got["pwws"]["attack_success_rate"] - got["pwws-fast"]["attack_success_rate"]) <= 0.1
    proc = cli("evaluate", f"hf:{tmp_path}", "--dataset", "wordnet-topics", "--device", "cpu")
    assert_one_line_error(proc, "has no config.json")


def test_save_to_disk_and_parquet_datasets(tmp_path):
    import datasets

    table = datasets.Dataset.from_dict({"text": ["good film", "bad film", "fine", "awful"], "label": [1, 0, 1, 0]})
    table.save_to_disk(str(tmp_path / "saved"))
    table.to_parquet(str(tmp_path / "t.parquet"))
    for source in (tmp_path / "saved", tmp_path / "t.parquet"):
        ds = load_dataset(str(source))
        assert ds.inputs == ["good film", "bad film", "fine", "awful"]
        assert ds.targets.tolist() == [1, 0, 1, 0] and ds.labels == ["0", "1"]
