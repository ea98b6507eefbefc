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
from robench.models.loading import load_model
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


class _ExecsCode:
    """builtins.exec on attacker-chosen source."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        import builtins

        return (builtins.exec, (f"open({self.target!r}, 'w').close()",))


class _BuildsSource:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return ("".join, ([f"open({self.target!r}, 'w')", ".close()"],))


class _NestedReduce:
    """A reduce whose argument is itself built by another reduce (eval of a joined string)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        import builtins

        return (builtins.eval, (_BuildsSource(self.target),))


@pytest.mark.parametrize("payload", [_RunsOsSystem, _ExecsCode, _NestedReduce, _WritesAFile])
@pytest.mark.parametrize("container", ["torch-zip", "raw-pickle", "state_dict-entry"])
def test_code_running_pickles_are_refused_in_every_container(tmp_path, payload, container):
    marker = tmp_path / "pwned"
    bad = tmp_path / "model.pth"
    obj = payload(str(marker))
    if container == "torch-zip":
        torch.save({"w": obj}, bad)
    elif container == "raw-pickle":
        with open(bad, "wb") as f:
            pickle.dump(obj, f, protocol=2)
    else:  # hidden inside an otherwise plausible checkpoint
        torch.save({"state_dict": {"w": torch.zeros(2)}, "optimizer": [obj]}, bad)
    with pytest.raises(RobenchError, match="refusing to load"):
        read_state_dict(bad)
    assert not marker.exists()
    # the payloads are live: full unpickling (what robench never does) runs them
    try:
        if container == "raw-pickle":
            pickle.loads(bad.read_bytes())
        else:
            torch.load(bad, weights_only=False)
    except Exception:
        pass
    assert marker.exists()


def _safetensors_with_header(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data


@pytest.mark.parametrize(
    "header,data,why",
    [
        ({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}, bytes(16), "shape larger than the data"),
        ({"w": {"dtype": "F64", "shape": [4], "data_offsets": [0, 16]}}, bytes(16), "dtype size does not match the offsets"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, bytes(8), "offsets run backwards"),
        ({"w": {"dtype": "X9", "shape": [2], "data_offsets": [0, 8]}}, bytes(8), "unknown dtype"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12), "overlapping tensors"),
    ],
)
def test_safetensors_headers_that_lie_are_refused(tmp_path, cli, header, data, why):
    path, _ = _tiny_checkpoint(tmp_path)
    path.write_bytes(_safetensors_with_header(header, data))
    with pytest.raises(RobenchError, match="corrupt or truncated"):
        read_state_dict(path)


def test_card_describing_other_weights_is_refused(tmp_path, cli):
    path, _ = _tiny_checkpoint(tmp_path)
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["weights_sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    proc = cli("evaluate", str(path), "--device", "cpu")
    assert_one_line_error(proc, "describes other weights")
