"""Checkpoint files: pickled code is refused, other toolkits' layouts are read, and a state dict
that does not fit the model is named in one line."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from aknet_cli.engine.checkpoint import load_checkpoint, load_state_strict, save_checkpoint
from aknet_cli.exceptions import CheckpointError


class _RunsCodeWhenUnpickled:
    """What a malicious checkpoint holds: unpickling it calls ``exec`` on a string."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_a_pickled_arbitrary_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "payload": _RunsCodeWhenUnpickled(marker)}, path)
    # (test_the_exec_payload_is_live shows the payload runs under an unrestricted unpickler)
    with pytest.raises(CheckpointError, match=r"evil\.pt.*objects other than tensors"):
        load_checkpoint(path)
    assert not marker.exists(), "loading a checkpoint ran code from the file"


def test_a_pickled_object_of_a_foreign_class_is_refused(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "args": _Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        load_checkpoint(path)


class _Namespace:
    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)


def test_the_exec_payload_is_live(tmp_path):
    """Guard for the test above: the payload does run under an unrestricted unpickler."""
    marker = tmp_path / "executed"
    pickle.loads(pickle.dumps(_RunsCodeWhenUnpickled(marker)))
    assert marker.read_text() == "pwned"


@pytest.mark.parametrize(
    "layout",
    [
        lambda sd: {"model": sd, "optimizer": {"state": {}, "param_groups": []}, "epoch": 7},  # DeiT/timm style
        lambda sd: {"state_dict": {"model": sd}, "meta": {"epoch": 3}},
        lambda sd: {"state_dict": sd, "epoch": 45, "best_prec1": 47.1},  # TSM style
        lambda sd: sd,
    ],
    ids=["model", "state_dict.model", "state_dict", "bare"],
)
def test_nested_state_dicts_and_ddp_prefixes_are_unwrapped(tmp_path, layout):
    sd = {"module.fc.weight": torch.arange(6.0).view(2, 3), "module.fc.bias": torch.tensor([1.0, -1.0])}
    path = tmp_path / "foreign.pth"
    torch.save(layout(sd), path)
    ckpt = load_checkpoint(path)
    assert ckpt["kind"] is None and ckpt["config"] == {}
    assert set(ckpt["state_dict"]) == {"fc.weight", "fc.bias"}
    torch.testing.assert_close(ckpt["state_dict"]["fc.weight"], sd["module.fc.weight"])
    model = nn.Sequential()
    model.fc = nn.Linear(3, 2)
    load_state_strict(model, ckpt["state_dict"], str(path))
    torch.testing.assert_close(model.fc.bias.detach(), torch.tensor([1.0, -1.0]))


def test_aknet_checkpoint_round_trip_keeps_kind_config_and_meta(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, kind="backbone", config={"backbone": "resnet18", "num_classes": 3},
                    state_dict={"module.w": torch.ones(2)}, meta={"epoch": 1})
    ckpt = load_checkpoint(path)
    assert ckpt["kind"] == "backbone" and ckpt["config"]["backbone"] == "resnet18" and ckpt["meta"] == {"epoch": 1}
    assert list(ckpt["state_dict"]) == ["w"]


@pytest.mark.parametrize(
    "obj",
    [{"epoch": 3, "lr": 0.1}, {}, [torch.zeros(1)], {"state_dict": {"w": torch.zeros(1), "step": 3}}],
    ids=["no-tensors", "empty", "list", "mixed"],
)
def test_files_without_a_state_dict_are_named(tmp_path, obj):
    path = tmp_path / "x.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=r"x\.pt holds neither an aknet checkpoint nor a state dict"):
        load_checkpoint(path)


def _net() -> nn.Module:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net.fc = nn.Linear(4, 2)
    return net


def test_missing_and_unexpected_keys_are_counted_and_named_in_one_line():
    net = _net()
    state = net.state_dict()
    del state["fc.bias"], state["1.running_var"]
    state["head.weight"] = torch.zeros(2, 4)
    with pytest.raises(CheckpointError) as err:
        load_state_strict(net, state, "ckpt.pt")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("ckpt.pt does not match the model: 2 missing and 1 unexpected keys (e.g. ")
    for key in ("fc.bias", "1.running_var", "head.weight"):
        assert key in msg, key


def test_allowed_missing_prefix_and_shape_mismatch():
    net = _net()
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    load_state_strict(net, state, "imagenet.pt", allow_missing=("fc.",))  # a new classifier: fine
    with pytest.raises(CheckpointError, match="1 missing and 0 unexpected keys"):
        load_state_strict(net, {k: v for k, v in state.items() if k != "0.weight"}, "imagenet.pt",
                          allow_missing=("fc.",))
    bad = dict(net.state_dict())
    bad["fc.weight"] = torch.zeros(5, 4)
    with pytest.raises(CheckpointError, match=r"1 tensors differ in shape \(e\.g\. fc\.weight: \(5, 4\) in the file, \(2, 4\) in the model\)"):
        load_state_strict(net, bad, "other.pt")
