"""Checkpoints: safetensors round trip, pickles refused, corrupt files and card mismatches -> exit 2."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from conftest import assert_one_line_error
from robench.checkpoint.card import Card, image_preprocessing
from robench.checkpoint.io import load_checkpoint, read_state_dict, save_checkpoint
from robench.errors import RobenchError
from robench.loading import load_model
from robench.models import ArchConfig, build_model


def _tiny_checkpoint(tmp_path: Path, variant: str = "bsa-grc") -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    cfg = ArchConfig(family="vit", variant=variant, embed_dim=16, depth=1, num_heads=2)
    net = build_model(cfg).eval()
    card = Card(task="image-classification", labels=[str(i) for i in range(10)], architecture=cfg,
                preprocessing=image_preprocessing(1, 8, [0.3], [0.4]))
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(net, card, path)
    return path, net


def test_round_trip_gives_identical_logits(tmp_path):
    path, net = _tiny_checkpoint(tmp_path)
    loaded = load_model(str(path))
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        # the wrapper normalises with the card's mean/std: inputs stay in [0, 1]
        assert torch.equal(loaded.module(x), net((x - 0.3) / 0.4))
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["format"] == "robench-card" and card["format_version"] == 1
    assert card["architecture"]["attention"] == "bsa" and card["architecture"]["residual"] == "grc"
    assert card["params"] == sum(p.numel() for p in net.parameters())
    import hashlib

    assert card["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() == loaded.sha256


class _WritesAFile:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


class _RunsOsSystem:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("payload", [_WritesAFile, _RunsOsSystem])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, payload):
    marker = tmp_path / "pwned"
    bad = tmp_path / "model.pt"
    with open(bad, "wb") as f:
        pickle.dump({"w": payload(str(marker))}, f)
    with pytest.raises(RobenchError, match="refusing to load"):
        read_state_dict(bad)
    assert not marker.exists()


def test_malicious_pickle_via_cli_exit_2(tmp_path, cli):
    path, _ = _tiny_checkpoint(tmp_path)
    marker = tmp_path / "pwned"
    bad = tmp_path / "tiny.pt"
    torch.save({"w": _RunsOsSystem(str(marker))}, bad)  # a torch zip file with a code-running pickle
    proc = cli("evaluate", str(bad), "-n", "10", "--device", "cpu")
    assert_one_line_error(proc, "refusing to load")
    assert not marker.exists()


def test_plain_state_dict_pt_loads_with_weights_only(tmp_path):
    path, net = _tiny_checkpoint(tmp_path)
    pt = tmp_path / "tiny.pt"
    torch.save(net.state_dict(), pt)
    pt.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    loaded, _, _ = load_checkpoint(pt)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_truncated_safetensors_exit_2(tmp_path, cli):
    path, _ = _tiny_checkpoint(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    proc = cli("evaluate", str(path), "--device", "cpu")
    assert_one_line_error(proc, "corrupt or truncated")


def test_card_weights_mismatch_names_the_difference(tmp_path, cli):
    path, _ = _tiny_checkpoint(tmp_path)
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["architecture"]["embed_dim"] = 32
    card["architecture"]["variant"] = "grc"  # BSA bandwidths become unexpected, pos_embed missing
    card_path.write_text(json.dumps(card))
    proc = cli("evaluate", str(path), "--device", "cpu")
    assert_one_line_error(proc, "card does not match weights")
    line = proc.stderr.strip()
    assert "missing keys ['pos_embed']" in line
    assert "unexpected keys ['encoder.blocks.0.attn.log_hp'" in line
    assert "shape mismatches: cls_token (1, 1, 16) vs card (1, 1, 32)" in line


def test_missing_card_exit_2(tmp_path, cli):
    path, _ = _tiny_checkpoint(tmp_path)
    path.with_suffix(".json").unlink()
    proc = cli("evaluate", str(path), "--device", "cpu")
    assert_one_line_error(proc, "needs its NAME.json card")


def test_card_is_data_not_code(tmp_path):
    path, _ = _tiny_checkpoint(tmp_path)
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["architecture"]["num_classes"] = "__import__('os').system('touch x')"
    card_path.write_text(json.dumps(card))
    with pytest.raises(RobenchError):
        load_checkpoint(path)


def test_label_count_must_match_architecture():
    cfg = ArchConfig(family="vit", variant="sa", num_classes=3)
    with pytest.raises(RobenchError, match="lists 2 labels but the architecture has 3 classes"):
        Card(task="image-classification", labels=["a", "b"], architecture=cfg, preprocessing={})
