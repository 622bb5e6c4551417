"""Built-in TSN/TSM backbones: registry, stages, temporal shift, pretrained weights."""

from __future__ import annotations

import pytest
import torch
import torchvision

from aknet_cli import create_backbone, list_backbones
from aknet_cli.exceptions import CheckpointError, ConfigError
from aknet_cli.layers import temporal_shift


def test_registry_lists_builtins_lazily_with_provider():
    rows = {r.name: r for r in list_backbones()}
    assert {"resnet18", "resnet50", "tsm_resnet18", "tsm_resnet50"} <= set(rows)
    assert rows["tsm_resnet50"].package == "aknet"
    assert rows["tsm_resnet50"].target == "aknet_backbones.tsm:tsm_resnet50"


def test_temporal_shift_moves_one_eighth_each_way_with_zero_padding():
    t, c = 4, 16
    x = torch.arange(2 * t * c, dtype=torch.float32).view(2 * t, c, 1, 1) + 1  # no zeros in the input
    y = temporal_shift(x, num_segments=t, fold_div=8).view(2, t, c)
    xv = x.view(2, t, c)
    for b in range(2):
        for f in range(t):
            for ch in range(c):
                if ch < 2:  # first fold: value from the next frame
                    want = xv[b, f + 1, ch] if f + 1 < t else 0.0
                elif ch < 4:  # second fold: value from the previous frame
                    want = xv[b, f - 1, ch] if f > 0 else 0.0
                else:
                    want = xv[b, f, ch]
                assert float(y[b, f, ch]) == float(want)


@pytest.mark.parametrize("name, channels", [("resnet18", [64, 64, 128, 256, 512]), ("tsm_resnet50", [64, 256, 512, 1024, 2048])])
def test_stages_report_channels_and_strides(name, channels):
    net = create_backbone(name, num_classes=5, num_segments=2).eval()
    x = torch.randn(1, 2, 3, 64, 64)
    for stage, c in zip(("stem", "res2", "res3", "res4", "res5"), channels):
        spec = net.specs[stage]
        out = net.forward_until(x, stage)
        assert spec.channels == c and out.shape == (2, c, 64 // spec.stride, 64 // spec.stride)
    with torch.no_grad():
        assert net(x).shape == (1, 5)


def test_tsn_is_frame_order_invariant_but_tsm_is_not():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 3, 64, 64)
    reversed_x = x.flip(1)
    for name, invariant in (("resnet18", True), ("tsm_resnet18", False)):
        net = create_backbone(name, num_classes=3, num_segments=4).eval()
        with torch.no_grad():
            same = torch.allclose(net(x), net(reversed_x), atol=1e-5)
        assert same is invariant, name


def test_pretrained_from_a_local_file(tmp_path):
    torch.manual_seed(1)
    tv = torchvision.models.resnet18()
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in tv.state_dict().items()}}, path)
    net = create_backbone("tsm_resnet18", num_classes=7, num_segments=2, pretrained=str(path))
    torch.testing.assert_close(net.stages["res3"][0].conv2.weight, tv.layer2[0].conv2.weight)
    torch.testing.assert_close(net.stages["res2"][1].conv1.net.weight, tv.layer1[1].conv1.weight)
    assert net.fc.out_features == 7  # the ImageNet classifier is never loaded


def test_bad_pretrained_values_are_named(tmp_path):
    with pytest.raises(ConfigError, match="NOT_A_WEIGHT"):
        create_backbone("resnet18", num_classes=2, num_segments=2, pretrained="NOT_A_WEIGHT")
    with pytest.raises(CheckpointError, match="missing.pth"):
        create_backbone("resnet18", num_classes=2, num_segments=2, pretrained=str(tmp_path / "missing.pth"))
    wrong = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), wrong)
    with pytest.raises(CheckpointError, match="r50.pth"):
        create_backbone("resnet18", num_classes=2, num_segments=2, pretrained=str(wrong))


def _offline(monkeypatch, tmp_path):
    """No network (whatever this machine has): every download fails as on an offline node."""
    from urllib.error import URLError

    def refuse(url, dst, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def test_imagenet_weights_offline_say_where_the_file_goes(monkeypatch, tmp_path, capsys):
    cache = _offline(monkeypatch, tmp_path)
    with pytest.raises(CheckpointError) as err:
        create_backbone("tsm_resnet18", num_classes=3, num_segments=2, pretrained="IMAGENET1K_V1")
    assert capsys.readouterr().out == ""  # no "Downloading: ..." beside the one line: nothing came
    message = str(err.value)
    assert len(message.splitlines()) == 1
    filename = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    for fragment in ("not in the torch hub cache", str(cache / filename), "TORCH_HOME", "local file path",
                     "Temporary failure in name resolution"):
        assert fragment in message, fragment


def test_weights_in_the_hub_cache_load_offline(monkeypatch, tmp_path):
    cache = _offline(monkeypatch, tmp_path)
    cache.mkdir(parents=True)
    filename = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    torch.manual_seed(3)
    tv = torchvision.models.resnet18()  # stands for the file copied there by hand
    torch.save(tv.state_dict(), cache / filename)
    net = create_backbone("resnet18", num_classes=3, num_segments=2, pretrained="IMAGENET1K_V1")
    torch.testing.assert_close(net.stages["res4"][1].conv2.weight, tv.layer3[1].conv2.weight)
    assert net.fc.out_features == 3


def test_a_local_file_needs_no_network(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    torch.manual_seed(2)
    tv = torchvision.models.resnet18()
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(tv.state_dict(), path)
    net = create_backbone("resnet18", num_classes=3, num_segments=2, pretrained=str(path))
    torch.testing.assert_close(net.stages["stem"][0].weight, tv.conv1.weight)
