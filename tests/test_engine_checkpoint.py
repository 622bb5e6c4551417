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


# ------------------------------------------------------------------------------ integrity
def _flip_bytes_inside(path, tensor: torch.Tensor, count: int = 64) -> None:
    """Invert ``count`` bytes in the middle of ``tensor``'s storage as written in ``path``."""
    raw = bytearray(path.read_bytes())
    data = tensor.detach().contiguous().numpy().tobytes()
    start = raw.find(data)
    assert start >= 0 and raw.find(data, start + 1) < 0, "the tensor's bytes must be in the file once"
    middle = start + len(data) // 2
    for i in range(middle, middle + count):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_flipped_bytes_inside_a_tensor_are_refused_in_one_line(tmp_path):
    torch.manual_seed(0)
    net = _net()
    path = tmp_path / "c.pt"
    save_checkpoint(path, kind="backbone", config={}, state_dict=net.state_dict())
    assert load_checkpoint(path)["verified"] is True
    _flip_bytes_inside(path, net[0].weight)
    import zipfile

    with zipfile.ZipFile(path) as archive:  # the file is still a readable archive, only its numbers changed
        assert archive.namelist()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert "c.pt is corrupt" in message and "SHA-256 of its state_dict" in message


def test_corrupt_optimizer_state_is_refused_too(tmp_path):
    path = tmp_path / "last.pt"
    momentum = torch.arange(256, dtype=torch.float32)
    save_checkpoint(path, kind="backbone", config={}, state_dict={"w": torch.ones(3)},
                    train_state={"optimizer": {"state": {0: {"momentum_buffer": momentum}}}, "epoch": 2})
    _flip_bytes_inside(path, momentum)
    with pytest.raises(CheckpointError, match="SHA-256 of its train_state"):
        load_checkpoint(path)


def test_format_1_checkpoints_without_a_digest_load_unverified(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": "aknet-checkpoint/1", "kind": "backbone", "config": {"backbone": "resnet18"},
                "state_dict": {"module.w": torch.ones(2)}, "meta": {}}, path)
    ckpt = load_checkpoint(path)
    assert ckpt["verified"] is False and ckpt["format"] == "aknet-checkpoint/1"
    assert list(ckpt["state_dict"]) == ["w"]


def test_the_digest_covers_names_shapes_and_values():
    from aknet_cli.engine.checkpoint import payload_sha256

    import hashlib

    base = {"a": torch.zeros(2, 3), "b": torch.ones(4)}
    assert payload_sha256(base) == payload_sha256({"b": torch.ones(4), "a": torch.zeros(2, 3)})
    for changed in ({"a": torch.zeros(3, 2), "b": torch.ones(4)}, {"a2": torch.zeros(2, 3), "b": torch.ones(4)},
                    {"a": torch.zeros(2, 3), "b": torch.ones(4, dtype=torch.float64)},
                    {"a": torch.zeros(2, 3), "b": torch.tensor([1.0, 1.0, 1.0, 1.0000001])}):
        assert payload_sha256(changed) != payload_sha256(base)
    # independently: the bytes hashed are the tensors' little-endian float32 bytes
    expected = hashlib.sha256()
    for name, t in (("a", base["a"]), ("b", base["b"])):
        expected.update(f"/{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        expected.update(t.numpy().astype("<f4").tobytes())
    assert payload_sha256(base) == expected.hexdigest()


# ------------------------------------------------------------------ other toolkits' metadata
class _HistoryBuffer:
    """What mmengine pickles in ``message_hub.log_scalars``: its ``HistoryBuffer`` (two NumPy
    arrays and a length), under mmengine's own module name."""

    def __init__(self) -> None:
        import numpy as np

        self.max_length = 1000000
        self._log_history = np.array([2.31, 1.87])
        self._count_history = np.array([1, 1])


def _mmengine_module(monkeypatch):
    import sys
    import types

    module = types.ModuleType("mmengine.logging.history_buffer")
    _HistoryBuffer.__module__ = module.__name__
    _HistoryBuffer.__qualname__ = _HistoryBuffer.__name__ = "HistoryBuffer"
    module.HistoryBuffer = _HistoryBuffer
    for name in ("mmengine", "mmengine.logging"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


@pytest.mark.parametrize("zipfile_format", [True, False], ids=["zip", "legacy"])
def test_an_unstripped_mmengine_checkpoint_loads_with_its_metadata(tmp_path, monkeypatch, zipfile_format):
    """mmengine's Runner.save_checkpoint layout: meta (config text, versions, NumPy scalars),
    the state dict, message_hub (HistoryBuffers, runtime info), optimizer and schedulers."""
    import numpy as np

    _mmengine_module(monkeypatch)
    weights = {"backbone.conv1.conv.weight": torch.randn(4, 3, 1, 1), "cls_head.fc_cls.bias": torch.zeros(5)}
    obj = {
        "meta": {"cfg": "model = dict(backbone=dict(num_segments=8))", "seed": 0, "experiment_name": "tsm",
                 "time": "20230317_101010", "mmengine_version": "0.7.2", "dataset_meta": {}, "epoch": 50,
                 "iter": 123, "best_score": np.float64(61.2)},
        "state_dict": weights,
        "message_hub": {"log_scalars": {"train/loss": _HistoryBuffer()},
                        "runtime_info": {"epoch": 50, "best_score": np.float64(61.2), "arr": np.arange(3)},
                        "resumed_keys": {"train/loss": True}},
        "optimizer": {"state": {0: {"momentum_buffer": torch.zeros(2)}}, "param_groups": [{"lr": 0.01}]},
        "param_schedulers": [{"milestones": __import__("collections").Counter({20: 1})}],
    }
    path = tmp_path / "epoch_50.pth"
    torch.save(obj, path, _use_new_zipfile_serialization=zipfile_format)
    ckpt = load_checkpoint(path)
    assert set(ckpt["state_dict"]) == set(weights)
    assert ckpt["meta"]["cfg"].startswith("model = dict(") and float(ckpt["meta"]["best_score"]) == 61.2


def test_an_object_outside_the_allow_list_is_named_with_how_to_strip(tmp_path):
    path = tmp_path / "epoch_3.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "meta": {"args": _Namespace(lr=0.1)}}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert "_Namespace" in message and "torch.save({'state_dict'" in message and "epoch_3.pth" in message
