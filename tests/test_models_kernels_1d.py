"""The 1-D conversion M (eq. 11) against the 2-D layers it replaces."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from aknet_cli.exceptions import ConfigError
from aknet_cli.layers import TemporalShift
from aknet_cli.models.kernels_1d import Converter, PointConv1d, batchnorm2d_to_1d, conv2d_to_1d


def _constant_along_width(b: int, c: int, length: int, width: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    line = torch.randn(b, c, length, generator=g)
    return line, line.unsqueeze(-1).expand(b, c, length, width).contiguous()


@pytest.mark.parametrize(
    "k, stride, padding, dilation, groups",
    [(1, 1, 0, 1, 1), (3, 1, 1, 1, 1), (3, 2, 1, 1, 1), (5, 1, 2, 1, 1), (3, 1, 2, 2, 1), (3, 2, 1, 1, 4), (3, 1, 1, 1, 8)],
)
def test_compaction_identity_on_inputs_constant_along_the_summed_axis(k, stride, padding, dilation, groups):
    torch.manual_seed(k * 100 + stride * 10 + groups)
    conv2 = nn.Conv2d(8, 16, k, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=True)
    conv1 = conv2d_to_1d(conv2, sum_axis=-1)
    assert (conv1.kernel_size, conv1.stride, conv1.padding, conv1.dilation, conv1.groups) == (
        (k,), (stride,), (padding,), (dilation,), groups)
    line, image = _constant_along_width(2, 8, 13, 21)
    y2 = conv2(image)
    y1 = conv1(line)
    # Interior columns: the whole kernel footprint lies inside the image, no zero padding seen.
    reach = dilation * (k - 1) // 2
    cols = [j for j in range(y2.shape[-1]) if j * stride - padding >= 0 and j * stride - padding + 2 * reach < 21]
    assert cols, "test geometry must leave interior columns"
    for j in cols:
        torch.testing.assert_close(y2[..., j], y1, rtol=1e-5, atol=1e-5)


def test_compaction_along_height_is_the_transpose():
    torch.manual_seed(1)
    conv2 = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    conv1 = conv2d_to_1d(conv2, sum_axis=-2)
    line, image = _constant_along_width(1, 4, 11, 9)
    image = image.transpose(-1, -2)  # now constant along the height
    torch.testing.assert_close(conv2(image)[..., 4, :], conv1(line), rtol=1e-5, atol=1e-5)
    # The 1-D weight is the hand-summed 2-D weight.
    torch.testing.assert_close(conv1.weight, conv2.weight[:, :, 0] + conv2.weight[:, :, 1] + conv2.weight[:, :, 2])


def test_batchnorm_statistics_are_copied():
    bn = nn.BatchNorm2d(5)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    bn1 = batchnorm2d_to_1d(bn).eval()
    line, image = _constant_along_width(3, 5, 7, 4)
    torch.testing.assert_close(bn(image)[..., 2], bn1(line))
    assert bn1.eps == bn.eps and bn1.momentum == bn.momentum


@pytest.mark.parametrize("block_factory", [
    lambda: torchvision.models.resnet.Bottleneck(64, 32, stride=2, downsample=nn.Sequential(
        nn.Conv2d(64, 128, 1, stride=2, bias=False), nn.BatchNorm2d(128))),
    lambda: torchvision.models.resnet.BasicBlock(16, 16),
])
def test_whole_residual_block_matches_2d_block_on_constant_inputs(block_factory):
    torch.manual_seed(3)
    block = block_factory()
    for m in block.modules():  # non-trivial statistics so BN conversion matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    block.eval()
    conv = Converter(stride_mode="axis")  # the identity holds when the kept axis's stride is kept
    block1 = conv(block, "block").eval()
    cin = block.conv1.in_channels
    line, image = _constant_along_width(2, cin, 16, 16)
    y2, y1 = block(image), block1(line)
    torch.testing.assert_close(y2[..., y2.shape[-1] // 2], y1, rtol=1e-4, atol=1e-4)
    # The 2-D original is untouched (converter works on a copy).
    assert isinstance(block.conv1, nn.Conv2d)


def test_temporal_shift_is_dropped_and_reported():
    block = torchvision.models.resnet.BasicBlock(16, 16)
    block.conv1 = TemporalShift(block.conv1, num_segments=4)
    conv = Converter()
    out = conv(block, "res5.0")
    assert isinstance(out.conv1, nn.Conv1d)
    actions = {(r.path, r.action) for r in conv.records}
    assert ("res5.0.conv1", "dropped") in actions
    assert ("res5.0.conv1.net", "converted") in actions


def test_unknown_module_is_refused_with_its_path():
    class Mystery(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return x * self.w

    with pytest.raises(ConfigError, match=r"res4\.1 \(Mystery\)"):
        Converter()(nn.Sequential(nn.ReLU(), Mystery()), "res4")


def test_backbone_hook_takes_precedence():
    seen = []

    def hook(module):
        if isinstance(module, nn.Conv2d):
            seen.append(module)
            return nn.Identity()
        return None

    conv = Converter(hook=hook)
    out = conv(nn.Sequential(nn.Conv2d(2, 2, 3), nn.BatchNorm2d(2)), "p")
    assert isinstance(out[0], nn.Identity) and isinstance(out[1], nn.BatchNorm1d)
    assert [r.action for r in conv.records] == ["plugin", "converted"]


def test_area_stride_keeps_the_same_fraction_of_points_as_the_2d_layer_keeps_of_positions():
    torch.manual_seed(5)
    block = torchvision.models.resnet.Bottleneck(64, 32, stride=2, downsample=nn.Sequential(
        nn.Conv2d(64, 128, 1, stride=2, bias=False), nn.BatchNorm2d(128))).eval()
    area = Converter(stride_mode="area")(block, "b").eval()
    # The 3-tap conv runs at the kept axis's stride and averages pairs; the 1×1 shortcut
    # averages groups of four first: a 2×2 stride keeps one point in four, and reads them all.
    assert (area.conv2.stride, area.conv2.pool, area.conv2.pool_first) == ((2,), 2, False)
    assert (area.downsample[0].stride, area.downsample[0].pool, area.downsample[0].pool_first) == ((1,), 4, True)
    points = torch.randn(2, 64, 470)
    with torch.no_grad():
        out = area(points)
    assert out.shape == (2, 128, 118)  # ceil(470 / 4), as a 2×2 stride keeps 1 position in 4


def test_unknown_stride_mode_is_refused():
    with pytest.raises(ConfigError, match="'diagonal'"):
        Converter(stride_mode="diagonal")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kernel, stride, padding, pool", [(1, 1, 0, 1), (3, 1, 1, 1), (1, 1, 0, 4), (3, 2, 1, 2)])
def test_converted_convs_compute_conv1d_whatever_path_they_take(kernel, stride, padding, pool, bias):
    """1×1 kernels run as a batched matrix product (PointConv1d); the result must be the
    convolution of torch's own conv1d with the same weights, other kernels included."""
    conv2d = nn.Conv2d(24, 40, (kernel, kernel), stride=(stride, 1), padding=padding, bias=bias)
    conv = conv2d_to_1d(conv2d, stride=stride, pool=pool, pool_first=(kernel == 1))
    assert isinstance(conv, PointConv1d) and isinstance(conv, nn.Conv1d)
    x = torch.randn(3, 24, 37)
    pooled = nn.functional.avg_pool1d(x, pool, pool, ceil_mode=True) if pool > 1 and kernel == 1 else x
    want = nn.functional.conv1d(pooled, conv2d.weight.sum(dim=-1), conv2d.bias, stride=stride, padding=padding)
    if pool > 1 and kernel > 1:
        want = nn.functional.avg_pool1d(want, pool, pool, ceil_mode=True)
    torch.testing.assert_close(conv(x), want, rtol=1e-5, atol=1e-5)
    assert set(conv.state_dict()) == set(nn.Conv1d(24, 40, kernel, bias=bias).state_dict())


def test_pointwise_product_counts_the_conv_multiply_adds():
    from aknet_cli.analysis.flops import flop_analysis

    conv = PointConv1d(24, 40, 1)
    x = torch.randn(3, 24, 37)
    assert flop_analysis(conv, (x,)).total() == 3 * 40 * 24 * 37  # B · C_out · C_in · N


@pytest.mark.parametrize("kernel, stride, padding, pool, groups", [(3, 2, 1, 2, 1), (3, 1, 1, 4, 1), (3, 2, 1, 2, 4),
                                                                   (5, 2, 2, 2, 1), (3, 2, 1, 4, 2)])
@pytest.mark.parametrize("length", [1, 2, 3, 7, 8, 33, 118])
def test_folded_average_is_the_convolution_then_its_average(kernel, stride, padding, pool, groups, length):
    """fold_average turns "conv at stride s, then the mean of `pool` outputs" into one wider
    conv at stride s·pool: the same outputs as torch's conv1d then avg_pool1d (ceil mode: a
    partial last window averages what it has), at every length, odd numbers of outputs included."""
    from aknet_cli.models.kernels_1d import AreaConv1d

    torch.manual_seed(length)
    conv = AreaConv1d(8, 12, kernel, stride=stride, padding=padding, groups=groups, pool=pool, bias=True).eval()
    x = torch.randn(2, 8, length)
    want = nn.functional.avg_pool1d(nn.functional.conv1d(x, conv.weight, conv.bias, stride, padding, 1, groups),
                                    pool, pool, ceil_mode=True)
    assert conv.fold_average()
    assert conv.folded_weight.shape[-1] == kernel + (pool - 1) * stride
    torch.testing.assert_close(conv(x), want, rtol=1e-5, atol=1e-5)


def test_fused_aknet_folds_every_strided_average_and_keeps_its_logits():
    from aknet_cli import build_aknet
    from aknet_cli.models import fuse_for_inference
    from aknet_cli.models.kernels_1d import AreaConv1d

    torch.manual_seed(0)
    model = build_aknet("resnet18", split="res2", num_classes=5, num_segments=2).eval()
    fused = fuse_for_inference(model)
    strided = [m for m in fused.point_net.modules() if isinstance(m, AreaConv1d) and not m.pool_first]
    assert strided and all(m.folded_weight is not None for m in strided)
    x = torch.randn(2, 2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-4)
