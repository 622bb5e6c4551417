"""Checkpoint files: pickled code is refused, other toolkits' layouts are read, and a state dict
that does not fit the model is named in one line."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from aknet_cli.checkpoints.format import read_checkpoint_file, load_state_strict, save_checkpoint
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
        read_checkpoint_file(path)
    assert not marker.exists(), "loading a checkpoint ran code from the file"


def test_a_pickled_object_of_a_foreign_class_is_refused(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "args": _Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        read_checkpoint_file(path)


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
    ckpt = read_checkpoint_file(path)
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
    ckpt = read_checkpoint_file(path)
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
        read_checkpoint_file(path)


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
    assert read_checkpoint_file(path)["verified"] is True
    _flip_bytes_inside(path, net[0].weight)
    import zipfile

    with zipfile.ZipFile(path) as archive:  # the file is still a readable archive, only its numbers changed
        assert archive.namelist()
    with pytest.raises(CheckpointError) as err:
        read_checkpoint_file(path)
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
        read_checkpoint_file(path)


def test_format_1_checkpoints_without_a_digest_load_unverified(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": "aknet-checkpoint/1", "kind": "backbone", "config": {"backbone": "resnet18"},
                "state_dict": {"module.w": torch.ones(2)}, "meta": {}}, path)
    ckpt = read_checkpoint_file(path)
    assert ckpt["verified"] is False and ckpt["format"] == "aknet-checkpoint/1"
    assert list(ckpt["state_dict"]) == ["w"]


def test_the_digest_covers_names_shapes_and_values():
    from aknet_cli.checkpoints.format import payload_sha256

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
    ckpt = read_checkpoint_file(path)
    assert set(ckpt["state_dict"]) == set(weights)
    assert ckpt["meta"]["cfg"].startswith("model = dict(") and float(ckpt["meta"]["best_score"]) == 61.2


def test_an_object_outside_the_allow_list_is_named_with_how_to_strip(tmp_path):
    path = tmp_path / "epoch_3.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "meta": {"args": _Namespace(lr=0.1)}}, path)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint_file(path)
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert "_Namespace" in message and "torch.save({'state_dict'" in message and "epoch_3.pth" in message


# ------------------------------------------------------------------ the model description
def _stage1(path, **config):
    """A valid TSM-R18 stage-1 checkpoint (2 classes, 2 segments) with ``config`` keys replaced
    (``None`` removes one); ``kind`` may be replaced too. Returns the path."""
    from aknet_cli import create_backbone

    kind = config.pop("kind", "backbone")
    net = create_backbone("tsm_resnet18", num_classes=2, num_segments=2)
    description = {"backbone": "tsm_resnet18", "num_classes": 2, "num_segments": 2,
                   "backbone_kwargs": {"dropout": 0.5}, "classes": ["push", "pull"],
                   "data": {"resize": 36, "crop": 32, "resize_mode": "square"}}
    description.update(config)
    description = {k: v for k, v in description.items() if v is not None}
    save_checkpoint(path, kind=kind, config=description, state_dict=net.state_dict())
    return path


_SWITCHES = {"split": "res3", "alpha": 0.3}
#: A description outside the schema: (replaced keys, fragments the one line must hold: the
#: field, what it holds, what it should hold).
BAD_DESCRIPTIONS = {
    "an option the backbone does not take": ({"backbone_kwargs": {"bogus": 1}}, ("config.backbone_kwargs", "bogus")),
    "a class count that is a word": ({"num_classes": "four"}, ("config.num_classes", "'four'", "integer >= 1")),
    "an AK-Net without its switches": ({"kind": "aknet"}, ("config.aknet", "missing", "switches")),
    "a frame count of 0": ({"num_segments": 0}, ("config.num_segments", "0", "integer >= 1")),
    "a boolean class count": ({"num_classes": True}, ("config.num_classes", "True", "integer")),
    "no class count": ({"num_classes": None}, ("config.num_classes",)),
    "a backbone nobody registers": ({"backbone": "resnet9000"}, ("config.backbone", "resnet9000", "tsm_resnet18")),
    "options that are not a table": ({"backbone_kwargs": [0.5]}, ("config.backbone_kwargs", "[0.5]", "table")),
    "a value the backbone refuses": ({"backbone_kwargs": {"dropout": "half"}}, ("config.backbone_kwargs", "half")),
    "class names of another count": ({"classes": ["push"]}, ("config.classes", "1 names", "2")),
    "a repeated class name": ({"classes": ["push", "push"]}, ("config.classes", "'push' twice")),
    "an unknown resize mode": ({"data": {"resize": 36, "crop": 32, "resize_mode": "fit"}},
                               ("config.data.resize_mode", "fit", "short, square")),
    "a crop larger than the resize": ({"data": {"resize": 36, "crop": 64}}, ("config.data.crop", "64", "36")),
    "an unknown label order": ({"label_order": "random"}, ("config.label_order", "random", "file, sorted")),
    "a field nobody writes": ({"teacher": "x"}, ("config.teacher",)),
    "AK-Net switches in a stage-1 file": ({"aknet": dict(_SWITCHES)}, ("config.aknet", "stage-1")),
    "an α out of range": ({"kind": "aknet", "aknet": {**_SWITCHES, "alpha": 5}}, ("config.aknet", "alpha", "5", "(0, 1]")),
    "an unknown AK-Net switch": ({"kind": "aknet", "aknet": {**_SWITCHES, "turbo": 1}}, ("config.aknet.turbo", "split")),
    "a split that is not a stage": ({"kind": "aknet", "aknet": {**_SWITCHES, "split": "res9"}}, ("config.aknet", "res9")),
}


@pytest.mark.parametrize("name", BAD_DESCRIPTIONS)
def test_a_description_outside_its_schema_is_named_in_one_line_before_any_model_is_built(tmp_path, monkeypatch, name):
    """The digest matches (the file was written so), yet the description cannot rebuild the
    model: the reader names the field, what it holds and what it should hold, and the CLI says
    it in one line instead of a TypeError/ValueError/KeyError traceback."""
    import aknet_cli.checkpoints.reader as loading
    from typer.testing import CliRunner

    from aknet_cli.cli.main import app
    from aknet_cli.checkpoints.reader import read_checkpoint
    from cli_helpers import assert_one_line_error

    replaced, fragments = BAD_DESCRIPTIONS[name]
    path = _stage1(tmp_path / "c.pt", **replaced)
    built = []
    monkeypatch.setattr(loading, "create_backbone", lambda *a, **k: built.append(a))
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and str(path) in message
    assert all(fragment in message for fragment in fragments), message
    assert built == []
    monkeypatch.undo()
    result = CliRunner().invoke(app, ["convert-1d", "-c", str(path), "--out", str(tmp_path / "ak.pt")])
    assert_one_line_error(result, "c.pt", fragments[0])


@pytest.mark.parametrize("edit", [
    ("config", lambda c: c["config"].update(num_classes=3)),
    ("config", lambda c: c["config"]["backbone_kwargs"].update(bogus=1)),
    ("meta", lambda c: c["meta"].update(epoch=9)),
    ("kind", lambda c: c.update(kind="aknet")),
    ("train_state", lambda c: c["train_state"].update(epoch=7)),
    ("note", lambda c: c.update(note="added")),
], ids=["a class count", "an option", "meta", "the kind", "the epoch to resume at", "a part added"])
def test_metadata_edited_after_saving_is_named_with_the_part_it_changed(tmp_path, edit):
    part, change = edit
    path = _stage1(tmp_path / "c.pt")
    obj = torch.load(path, weights_only=True)
    obj["train_state"] = {"epoch": 2, "momentum": torch.ones(3)}
    obj["digest"] = {"sha256": {"state_dict": obj["digest"]["sha256"]["state_dict"]}}
    save_checkpoint(path, kind=obj["kind"], config=obj["config"], state_dict=obj["state_dict"], meta={"epoch": 1},
                    train_state=obj["train_state"])
    assert read_checkpoint_file(path)["metadata_verified"] is True
    obj = torch.load(path, weights_only=True)
    change(obj)
    torch.save(obj, path)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint_file(path)
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert "c.pt was edited after it was written" in message and f"its {part} no longer matches" in message


def test_format_2_checkpoints_keep_loading_with_their_tensors_verified_and_their_description_checked(tmp_path):
    """Format 2 (aknet before the metadata digest): a SHA-256 of the tensors only, written here
    as that version wrote it."""
    from aknet_cli.checkpoints.format import payload_sha256
    from aknet_cli.checkpoints.reader import build_model, read_checkpoint

    obj = torch.load(_stage1(tmp_path / "new.pt"), weights_only=True)
    old = {"format": "aknet-checkpoint/2", "kind": obj["kind"], "config": obj["config"], "state_dict": obj["state_dict"],
           "meta": {"epoch": 4}, "digest": {"sha256": {"state_dict": payload_sha256(obj["state_dict"])}}}
    torch.save(old, tmp_path / "v2.pt")
    ckpt = read_checkpoint(tmp_path / "v2.pt")
    assert ckpt.verified and not ckpt.raw["metadata_verified"] and ckpt.raw["meta"] == {"epoch": 4}
    build_model(ckpt)
    torch.save({**old, "config": {**old["config"], "num_classes": "four"}}, tmp_path / "v2_bad.pt")
    with pytest.raises(CheckpointError, match=r"config\.num_classes holds 'four'"):
        read_checkpoint(tmp_path / "v2_bad.pt")
    old["state_dict"] = {**old["state_dict"], "fc.bias": old["state_dict"]["fc.bias"] + 1}
    torch.save(old, tmp_path / "v2_flipped.pt")
    with pytest.raises(CheckpointError, match="SHA-256 of its state_dict tensors"):
        read_checkpoint(tmp_path / "v2_flipped.pt")
