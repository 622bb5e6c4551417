"""A backbone plugin brings the layout of its published weights (``register_checkpoint_layout``),
and aknet reads such a file as it reads official TSM's or TDN's.

The plugin is ``_thirdparty_layout``, installed here through a mocked ``aknet.backbones`` entry
point, never imported by the test itself: reading a checkpoint must import it. Its file is
written with the lab's own key names (``encoder.block1.…``, ``head.linear.…``), from a model
whose weights the read model must then hold.
"""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint

import pytest
import torch
import torchvision

from aknet_cli import _registry
from aknet_cli.checkpoints.reader import build_model, read_checkpoint
from aknet_cli.exceptions import CheckpointError
from test_checkpoints_tdn_layout import _randomise

PLUGIN = "_thirdparty_layout"
T = 2
CLASSES = 5
# The lab's code names a ResNet-18's parts so (ours → theirs), as its published files hold them.
LAB_NAMES = {"stages.stem.0.": "encoder.conv1.", "stages.stem.1.": "encoder.bn1.", "stages.res2.": "encoder.block1.",
             "stages.res3.": "encoder.block2.", "stages.res4.": "encoder.block3.", "stages.res5.": "encoder.block4.",
             "fc.": "head.linear."}


def _install(monkeypatch, *extra: EntryPoint) -> None:
    """Add entry points to the installed ones; the layouts registered meanwhile are dropped after."""
    real = _registry.entry_points

    def with_extra(*, group):
        return [*real(group=group), *extra]

    monkeypatch.setattr(_registry, "entry_points", with_extra)
    monkeypatch.setattr(_registry, "_CHECKPOINT_LAYOUTS", dict(_registry._CHECKPOINT_LAYOUTS))
    monkeypatch.delitem(sys.modules, PLUGIN, raising=False)


def _install_lab_plugin(monkeypatch) -> None:
    _install(monkeypatch, EntryPoint("lab_resnet18", f"{PLUGIN}:lab_resnet18", "aknet.backbones"))


@pytest.fixture(scope="module")
def lab():
    """An aknet ResNet-18 and the file the lab's code would have saved of it."""
    from aknet_cli import create_backbone

    net = _randomise(create_backbone("resnet18", num_classes=CLASSES, num_segments=T), seed=3)
    theirs = {}
    for key, value in net.state_dict().items():
        prefix = next(p for p in LAB_NAMES if key.startswith(p))
        theirs[LAB_NAMES[prefix] + key[len(prefix):]] = value
    return net, {"state_dict": theirs, "meta": {"epoch": 30}}


def _save(obj, path):
    torch.save(obj, path)
    return path


def test_a_plugins_layout_is_read_to_the_same_weights(monkeypatch, lab, tmp_path):
    net, saved = lab
    _install_lab_plugin(monkeypatch)
    assert PLUGIN not in sys.modules
    ckpt = read_checkpoint(_save(saved, tmp_path / "lab_r18.pth"), num_segments=T)
    assert PLUGIN in sys.modules  # the reader imported the plugin before detection
    assert ckpt.format == "a lab checkpoint" and ckpt.kind == "backbone" and ckpt.label_order == "file"
    assert ckpt.config["backbone"] == "lab_resnet18" and ckpt.config["num_classes"] == CLASSES
    model = build_model(ckpt).eval()  # what `aknet eval` does with the checkpoint it reads
    for key, value in net.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    x = torch.randn(1, T, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x), rtol=0, atol=0)


def test_a_plugins_layout_names_keys_as_its_file_does(monkeypatch, lab, tmp_path):
    _, saved = lab
    state = dict(saved["state_dict"])
    del state["encoder.block2.1.conv2.weight"]
    _install_lab_plugin(monkeypatch)
    ckpt = read_checkpoint(_save({"state_dict": state}, tmp_path / "lab_r18.pth"), num_segments=T)
    with pytest.raises(CheckpointError) as err:
        build_model(ckpt)
    assert "encoder.block2.1.conv2.weight" in str(err.value) and "a lab checkpoint" in str(err.value)


def test_a_plugins_layout_refuses_its_own_variants_by_name(monkeypatch, lab, tmp_path):
    _, saved = lab
    state = {**saved["state_dict"], "encoder.block3.0.attention.weight": torch.zeros(1)}
    _install_lab_plugin(monkeypatch)
    path = _save({"state_dict": state}, tmp_path / "lab_attn.pth")
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path, num_segments=T)
    message = str(err.value)
    assert message.startswith(str(path)) and len(message.splitlines()) == 1
    assert "a lab checkpoint with attention blocks, which aknet does not read: lab_resnet18 has none" in message


def test_without_the_plugin_its_layout_is_refused_as_any_unknown_one(lab, tmp_path):
    _, saved = lab
    path = _save(saved, tmp_path / "lab_r18.pth")
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path, num_segments=T)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "lab_r18.pth" in message
    assert "the checkpoint's keys match no layout aknet reads: they start with encoder.* (" in message
    assert "head.* (2 keys)" in message
    for known in ("aknet checkpoints (stages.*, fc.*)", "official TSM (base_model.layer1.*, new_fc.*)",
                  "official TDN (base_model.layer1_bak.*, base_model.conv1_5.*)",
                  "mmaction2 1.x TSM/TSN (backbone.layer1.*, cls_head.fc_cls.*)"):
        assert known in message
    assert "lab's code" not in message


def test_an_installed_plugins_layout_is_listed_among_the_known_ones(monkeypatch, tmp_path):
    _install_lab_plugin(monkeypatch)
    path = _save({"features.0.weight": torch.zeros(8, 3, 3, 3), "classifier.0.weight": torch.zeros(4, 8)},
                 tmp_path / "vgg.pth")
    with pytest.raises(CheckpointError, match=r"aknet reads aknet checkpoints .*; the lab's code \(encoder"):
        read_checkpoint(path)


def test_built_in_layouts_are_asked_first_and_in_their_order(monkeypatch):
    import aknet_backbones.tsm  # noqa: F401  (whichever plugin was imported first, the order holds)

    _install_lab_plugin(monkeypatch)
    layouts, skipped = _registry.checkpoint_layouts()
    assert [layout.known_as.split(" (")[0] for layout in layouts] == [
        "official TDN", "official TSM", "mmaction2 1.x TSM/TSN", "the lab's code"]
    assert skipped == []


def test_a_broken_plugin_does_not_stop_other_layouts_and_is_named_when_nothing_matches(monkeypatch, tmp_path):
    _install(monkeypatch, EntryPoint("broken_net", "no_such_module_anywhere.nets:broken_net", "aknet.backbones"))
    # Official TSM's layout as TSM's main.py saves a TSN trained with --dropout 0: torchvision's
    # ResNet under base_model.
    net = torchvision.models.resnet18(num_classes=CLASSES)
    state = {f"module.base_model.{k}": v for k, v in net.state_dict().items()}
    tsn = _save({"epoch": 1, "arch": "resnet18", "state_dict": state}, tmp_path / "TSN_something_segment2.pth")
    assert read_checkpoint(tsn).format == "an official TSM-code TSN checkpoint (no shift)"
    unknown = _save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "vgg.pth")
    with pytest.raises(CheckpointError, match=r"not asked: backbone 'broken_net'.s module no_such_module_anywhere.nets "
                                              r"cannot be imported \(ModuleNotFoundError"):
        read_checkpoint(unknown)
