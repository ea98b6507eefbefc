"""timm integration: robench's registered DeiT-size configs, ``timm:DIR`` hub-layout folders and
``robench export`` (a robench checkpoint as such a folder, read back by timm and by robench)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch

from conftest import REPO, assert_one_line_error
from robench.errors import RobenchError
from robench.models.loading import load_model

timm = pytest.importorskip("timm")
import robench.models.timm_models  # noqa: E402,F401  (explicit here; `import robench` registers them too)

VARIANTS = ("sa", "bsa", "grc", "bsa_grc")


def normalised(x: torch.Tensor, mean, std) -> torch.Tensor:
    return (x - torch.tensor(mean)[None, :, None, None]) / torch.tensor(std)[None, :, None, None]


# -- registered configs -------------------------------------------------------------------------

def test_deit_tiny_sa_has_deit_tinys_parameter_count_and_timm_data_config():
    ours = timm.create_model("robench_deit_tiny_sa_patch16_224")
    deit = timm.create_model("deit_tiny_patch16_224")  # timm's own, built locally (no download)
    n_ours, n_deit = (sum(p.numel() for p in m.parameters()) for m in (ours, deit))
    assert n_deit == 5_717_416
    assert abs(n_ours - n_deit) / n_deit < 0.02
    assert (ours.cfg.embed_dim, ours.cfg.depth, ours.cfg.num_heads, ours.cfg.mlp_ratio, ours.cfg.patch_size) == (192, 12, 3, 4.0, 16)
    cfg = timm.data.resolve_data_config({}, model=ours)
    assert cfg["input_size"] == (3, 224, 224) and cfg["crop_pct"] == 0.875 and cfg["interpolation"] == "bicubic"
    assert tuple(cfg["mean"]) == timm.data.IMAGENET_DEFAULT_MEAN and ours.num_classes == 1000
    assert ours.pretrained_cfg["first_conv"] == "patch_embed" and ours.pretrained_cfg["classifier"] == "head"
    assert isinstance(ours.get_submodule("patch_embed"), torch.nn.Conv2d) and ours.get_submodule("head") is ours.get_classifier()
    small = timm.create_model("robench_deit_small_grc_patch4_32")
    assert (small.cfg.embed_dim, small.cfg.num_heads, small.cfg.img_size, small.cfg.patch_size, small.num_classes) == (384, 6, 32, 4, 10)
    assert timm.data.resolve_data_config({}, model=small)["crop_pct"] == 1.0


def test_every_registered_name_builds_its_variant():
    names = timm.list_models("robench_deit_*")
    assert len(names) == 16
    for size in ("tiny", "small"):
        for v in VARIANTS:
            for geometry in ("patch16_224", "patch4_32"):
                assert f"robench_deit_{size}_{v}_{geometry}" in names
    m = timm.create_model("robench_deit_tiny_bsa_grc_patch4_32", depth=2, num_classes=7)  # kwargs override, as timm's deit_*
    assert (m.cfg.variant, m.cfg.depth, m.num_classes, m.pos_embed) == ("bsa-grc", 2, 7, None)
    assert m.pretrained_cfg["num_classes"] == 7 and m.pretrained_cfg["input_size"] == (3, 32, 32)


@pytest.mark.parametrize("variant", VARIANTS)
def test_224_px_forward_of_every_variant(variant):
    """14 x 14 patches + CLS: BSA's spatial kernel takes the fast expansion path at init and matches
    the exact dense-bias formula; every variant gives 1,000 finite logits."""
    torch.manual_seed(0)
    m = timm.create_model(f"robench_deit_tiny_{variant}_patch16_224", depth=2).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        out = m(x)
        assert out.shape == (1, 1000) and torch.isfinite(out).all()
        if variant.startswith("bsa"):
            pos = m.positions(197, torch.float32)
            assert m.grid == 14 and all(b.attn.uses_expansion(pos) for b in m.encoder.blocks)
            exact = m.forward_head(m.encoder(m.embed(x), sq_dist=m.sq_dist))
            torch.testing.assert_close(out, exact, rtol=1e-4, atol=1e-4)


def test_pretrained_weights_and_regularisers_are_refused_clearly():
    from robench.models.timm_models import NoPretrainedWeights

    with pytest.raises(NoPretrainedWeights, match="robench publishes no pretrained timm weights"):
        timm.create_model("robench_deit_tiny_bsa_patch16_224", pretrained=True)
    with pytest.raises(RobenchError, match="robench publishes no pretrained timm weights"):
        load_model("timm:robench_deit_tiny_sa_patch4_32=pretrained", labels=[str(i) for i in range(10)])
    with pytest.raises(ValueError, match="drop_path_rate: robench's ViT has no dropout or stochastic depth"):
        timm.create_model("robench_vit_sa", drop_path_rate=0.1)
    m = timm.create_model("robench_vit_sa", drop_rate=0.0, drop_path_rate=None)  # what train.py passes by default
    assert m.num_classes == 10


@pytest.mark.slow
def test_import_robench_alone_registers_the_models_without_importing_timm():
    code = ("import sys, robench\n"
            "assert 'timm' not in sys.modules and 'torch' not in sys.modules\n"
            "import timm\n"
            "m = timm.create_model('robench_deit_tiny_bsa_patch16_224')\n"
            "print(type(m).__name__, len(timm.list_models('robench_*')))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["RobenchViT", "20"]
    # and in the other order: timm first, robench after
    code = "import timm, robench\nprint(timm.is_model('robench_deit_small_sa_patch16_224'))\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr[-2000:]


# -- timm:DIR -----------------------------------------------------------------------------------

def _timm_folder(path, safe=True, **model_config):
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=4, depth=1).eval()
    timm.models.save_for_hf(vit, str(path), model_config=model_config, safe_serialization=safe)
    return vit


def test_timm_folder_from_save_for_hf_gives_identical_logits_and_its_labels(tmp_path):
    folder = tmp_path / "vit"
    vit = _timm_folder(folder, label_names=["cat", "dog", "eel", "fox"])
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_model(f"timm:{folder}")  # no dataset needed: the folder names its classes
    assert loaded.labels == ["cat", "dog", "eel", "fox"]
    pre = loaded.card.preprocessing
    cfg = timm.data.resolve_data_config({}, model=vit)  # what timm itself says about this model
    assert (pre["mean"], pre["std"], pre["crop_pct"], pre["interpolation"], pre["size"]) == \
        (list(cfg["mean"]), list(cfg["std"]), cfg["crop_pct"], cfg["interpolation"], [224, 224])
    assert loaded.card.architecture.name == "vit_tiny_patch16_224" and loaded.card.architecture.kwargs["depth"] == 1
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), vit(normalised(x, cfg["mean"], cfg["std"])))
    with pytest.raises(RobenchError, match=r"has 4 classes \(num_classes in config.json\) but the dataset has 10 labels"):
        load_model(f"timm:{folder}", labels=[str(i) for i in range(10)])


def test_timm_folder_labels_without_names_and_as_an_id_map(tmp_path):
    _timm_folder(tmp_path / "plain")
    assert load_model(f"timm:{tmp_path / 'plain'}").labels == ["0", "1", "2", "3"]
    assert load_model(f"timm:{tmp_path / 'plain'}", labels=list("wxyz")).labels == list("wxyz")  # the dataset's, as timm:NAME
    _timm_folder(tmp_path / "gaps", label_names={"0": "n01", "3": "n04"})
    assert load_model(f"timm:{tmp_path / 'gaps'}").labels == ["n01", "1", "2", "n04"]
    config = json.loads((tmp_path / "plain" / "config.json").read_text())
    config["label_names"] = ["a", "b"]
    (tmp_path / "plain" / "config.json").write_text(json.dumps(config))
    with pytest.raises(RobenchError, match="lists 2 label_names for num_classes=4"):
        load_model(f"timm:{tmp_path / 'plain'}")


def test_pytorch_model_bin_loads_weights_only_and_a_code_pickle_is_refused(tmp_path):
    folder = tmp_path / "bin"
    vit = _timm_folder(folder, safe=False)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "pytorch_model.bin"]
    loaded = load_model(f"timm:{folder}")
    x = torch.rand(1, 3, 224, 224)
    cfg = timm.data.resolve_data_config({}, model=vit)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), vit(normalised(x, cfg["mean"], cfg["std"])))

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path}/pwned",))

    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"w": Evil()}, protocol=2))
    with pytest.raises(RobenchError, match="refusing to load"):
        load_model(f"timm:{folder}")
    assert not (tmp_path / "pwned").exists()


def test_a_missing_timm_folder_path_is_named(tmp_path):
    with pytest.raises(RobenchError, match="no folder .*timm:DIR takes a timm hub-layout folder"):
        load_model(f"timm:{tmp_path}/nope")


# -- robench export -----------------------------------------------------------------------------

@pytest.mark.parametrize("zoo", ["digits-vit-sa", "digits-vit-bsa-grc"])
def test_export_round_trip_through_timm_and_robench(zoo, tmp_path):
    from safetensors.torch import load_file

    from robench.checkpoint.export import export_checkpoint
    from robench.engine.args import ExportArgs

    ref = load_model(zoo)
    result = export_checkpoint(ExportArgs(checkpoint=zoo, to="timm", out=tmp_path / "dir"))
    folder = result.path
    assert result.files == ["config.json", "model.safetensors"] and sorted(os.listdir(tmp_path)) == ["dir"]
    config = json.loads((folder / "config.json").read_text())
    card = ref.card
    arch = card.architecture
    assert config["architecture"] == f"robench_vit_{arch.variant.replace('-', '_')}" == result.architecture
    assert config["num_classes"] == 10 and config["label_names"] == card.labels
    assert {k: config["model_args"][k] for k in ("embed_dim", "depth", "num_heads", "mlp_ratio", "patch_size", "in_chans")} == \
        {k: getattr(arch, k) for k in ("embed_dim", "depth", "num_heads", "mlp_ratio", "patch_size", "in_chans")}
    pc = config["pretrained_cfg"]
    assert (pc["input_size"], pc["mean"], pc["std"], pc["crop_pct"]) == ([1, 8, 8], card.preprocessing["mean"], card.preprocessing["std"], 1.0)
    assert config["robench"]["card"]["weights_sha256"] == card.weights_sha256
    saved = load_file(str(folder / "model.safetensors"))
    assert saved.keys() == ref.module.net.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in ref.module.net.state_dict().items())

    x = torch.rand(16, 1, 8, 8)
    back = load_model(f"timm:{folder}")
    timm_model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()  # timm's own loader
    cfg = timm.data.resolve_data_config({}, model=timm_model)
    with torch.no_grad():
        expected = ref.module(x)
        assert torch.equal(back.module(x), expected)
        assert torch.equal(timm_model(normalised(x, cfg["mean"], cfg["std"])), expected)
    assert back.labels == card.labels and back.sha256 == result.sha256


def test_export_hf_adds_the_model_card_and_refuses_what_it_cannot_carry(tmp_path):
    from robench.checkpoint.export import export_checkpoint
    from robench.engine.args import ExportArgs

    out = export_checkpoint(ExportArgs(checkpoint="digits-vit-bsa", to="hf", out=tmp_path / "hf"))
    assert out.files == ["README.md", "config.json", "model.safetensors"]
    readme = (tmp_path / "hf" / "README.md").read_text()
    assert readme.startswith("---\ntags:\n- image-classification\n- timm\n- robench\n") and "library_name: timm" in readme
    assert "# Model card for digits-vit-bsa" in readme and 'timm.create_model("hf-hub:OWNER/REPO", pretrained=True)' in readme
    timm_out = export_checkpoint(ExportArgs(checkpoint="digits-vit-bsa", to="timm", out=tmp_path / "t"))
    assert (tmp_path / "t" / "config.json").read_bytes() == (tmp_path / "hf" / "config.json").read_bytes()
    assert timm_out.sha256 == out.sha256
    with pytest.raises(RobenchError, match="exists and is not empty; choose another folder or pass --force"):
        export_checkpoint(ExportArgs(checkpoint="digits-vit-sa", to="timm", out=tmp_path / "t"))
    export_checkpoint(ExportArgs(checkpoint="digits-vit-sa", to="timm", out=tmp_path / "t", force=True))
    assert json.loads((tmp_path / "t" / "config.json").read_text())["architecture"] == "robench_vit_sa"
    assert sorted(os.listdir(tmp_path)) == ["hf", "t"]  # the replaced folder and the temporary one are gone
    with pytest.raises(RobenchError, match="timm has no architecture to carry robench's text classifiers or language models"):
        export_checkpoint(ExportArgs(checkpoint="wordnet-text-sa", to="timm", out=tmp_path / "x"))
    with pytest.raises(RobenchError, match="--to must be one of timm, hf"):
        ExportArgs(checkpoint="digits-vit-sa", to="onnx", out=tmp_path / "x")
    assert sorted(os.listdir(tmp_path)) == ["hf", "t"]


@pytest.mark.slow
def test_hf_export_reads_back_as_hf_hub_from_an_offline_cache(tmp_path, cli):
    """What --to hf writes is what a hub repository serves: laid out as huggingface_hub's cache, timm
    loads it with hf-hub: offline (HF_HUB_OFFLINE=1), after `import robench`."""
    proc = cli("export", "digits-vit-grc", "--to", "hf", str(tmp_path / "hf"))
    assert proc.returncode == 0 and proc.stdout.startswith(f"{tmp_path / 'hf'}: robench_vit_grc (README.md, config.json, model.safetensors)"), proc.stderr
    cache = tmp_path / "cache"
    rev = "0" * 40
    snap = cache / "models--someone--digits-vit-grc" / "snapshots" / rev
    snap.parent.mkdir(parents=True)
    (tmp_path / "hf").rename(snap)
    (cache / "models--someone--digits-vit-grc" / "refs").mkdir()
    (cache / "models--someone--digits-vit-grc" / "refs" / "main").write_text(rev)
    code = ("import robench, timm, torch\n"
            "m = timm.create_model('hf-hub:someone/digits-vit-grc', pretrained=True).eval()\n"
            "ref = robench.load_model('digits-vit-grc')\n"
            "x = torch.rand(8, 1, 8, 8)\n"
            "z = (x - ref.module.mean) / ref.module.std\n"
            "with torch.no_grad():\n"
            "    assert torch.equal(m(z), ref.module(x))\n"
            "print(m.pretrained_cfg['hf_hub_id'])\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "someone/digits-vit-grc"


def test_export_command_line(cli, tmp_path):
    proc = cli("export", "digits-vit-sa", str(tmp_path / "a"))
    assert_one_line_error(proc, "Missing option '--to'")
    assert not (tmp_path / "a").exists()


def test_export_of_a_plain_state_dict_with_arch(tmp_path):
    from robench.checkpoint.export import export_checkpoint
    from robench.engine.args import ExportArgs

    ref = load_model("digits-vit-grc")
    pt = tmp_path / "epoch9.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref.module.net.state_dict().items()}}, pt)
    result = export_checkpoint(ExportArgs(checkpoint=str(pt), arch="digits-vit-grc", to="timm", out=tmp_path / "dir"))
    assert result.architecture == "robench_vit_grc"
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(load_model(f"timm:{result.path}").module(x), ref.module(x))
