"""FLOPs of ResNet stages and TDN's modules, derived by hand from the architectures.

Independent of aknet's code: each layer's cost is written out from the published architecture
(torchvision ResNet v1.5: the stride sits on the 3×3 conv; TDN, Wang et al. 2021) under
fvcore's convention:

* a convolution costs ``C_in/groups · C_out · k_h·k_w · H_out·W_out`` (Table I's formula);
* BatchNorm in eval mode costs 2 per element (scale and shift);
* a linear layer costs ``in · out`` per row;
* nearest upsampling costs one per output element;
* ReLU, pooling (max and average), additions and sigmoids cost nothing.

All numbers are per frame; multiply by ``T`` for a clip.
"""

from __future__ import annotations


def out_side(side: int, stride: int) -> int:
    """A 3×3 conv with padding 1 (or a 1×1 without) at this stride: ``⌈side / stride⌉``."""
    return (side - 1) // stride + 1


def conv(cin: int, cout: int, k: int, hw_out: int, groups: int = 1) -> int:
    return cin // groups * cout * k * k * hw_out


def bn(channels: int, hw: int) -> int:
    return 2 * channels * hw


def basic_stage(cin: int, planes: int, blocks: int, stride: int, side_in: int) -> int:
    """A ResNet-18 stage of ``blocks`` BasicBlocks (two 3×3 convs, BN after each)."""
    side = out_side(side_in, stride)
    hw = side * side
    total = conv(cin, planes, 3, hw) + bn(planes, hw) + conv(planes, planes, 3, hw) + bn(planes, hw)
    if stride != 1 or cin != planes:
        total += conv(cin, planes, 1, hw) + bn(planes, hw)
    total += (blocks - 1) * 2 * (conv(planes, planes, 3, hw) + bn(planes, hw))
    return total


def bottleneck_stage(cin: int, planes: int, blocks: int, stride: int, side_in: int) -> int:
    """A ResNet-50 stage of ``blocks`` Bottlenecks (1×1, 3×3 with the stride, 1×1 ×4)."""
    out = 4 * planes
    side = out_side(side_in, stride)
    hw_in, hw = side_in * side_in, side * side
    first = (conv(cin, planes, 1, hw_in) + bn(planes, hw_in) + conv(planes, planes, 3, hw) + bn(planes, hw)
             + conv(planes, out, 1, hw) + bn(out, hw) + conv(cin, out, 1, hw) + bn(out, hw))
    rest = conv(out, planes, 1, hw) + bn(planes, hw) + conv(planes, planes, 3, hw) + bn(planes, hw) \
        + conv(planes, out, 1, hw) + bn(out, hw)
    return first + (blocks - 1) * rest


def resnet_stem(side_in: int) -> int:
    """7×7/2 conv 3→64 + BN; the max-pool is free."""
    hw = out_side(side_in, 2) ** 2
    return conv(3, 64, 7, hw) + bn(64, hw)


def long_term_tdm(channels: int, side: int, reduction: int = 16) -> int:
    """TDN's long-term TDM on a ``channels × side × side`` map (the wrapped conv excluded).

    Reduce (1×1 + BN), a depthwise 3×3 on the neighbours, then two excitations (forward and
    backward difference), each: 3×3 conv + BN at full size, 3×3 conv + BN at half size
    (rounded down, as TDN's ``AvgPool2d(2, 2)``; a 1-pixel side is kept) upsampled back, 1×1
    expand + BN; then the learnable shift, a depthwise temporal conv of 3 taps at every position.
    """
    r = channels // reduction
    hw = side * side
    half = (side // 2 if side >= 2 else 1) ** 2
    excitation = (conv(r, r, 3, hw) + bn(r, hw)
                  + conv(r, r, 3, half) + bn(r, half) + r * hw
                  + conv(r, channels, 1, hw) + bn(channels, hw))
    return (conv(channels, r, 1, hw) + bn(r, hw) + conv(r, r, 3, hw, groups=r)
            + 2 * excitation + 3 * channels * hw)


def tdn_resnet50(side_in: int = 224, num_classes: int = 174) -> dict[str, int]:
    """Per-frame FLOPs of TDN-ResNet-50 by part (what ``aknet flops`` reports, divided by T)."""
    s = side_in // 4  # stem output (56 at 224)
    parts = {
        "stem": resnet_stem(side_in),
        "res2": bottleneck_stage(64, 64, 3, 1, s),
        # Short-term TDM: 2×2 average pool (free), then a 7×7/2 conv on the 12 stacked RGB
        # differences + BN (output s×s), a max-pool to s/2, a res2 copy there; both outputs are
        # upsampled to s×s to be fused (64 and 256 channels).
        "short-term TDM": (conv(12, 64, 7, s * s) + bn(64, s * s)
                           + bottleneck_stage(64, 64, 3, 1, s // 2)
                           + 64 * s * s + 256 * s * s),
    }
    side, cin = s, 256
    for name, planes, blocks in (("res3", 128, 4), ("res4", 256, 6), ("res5", 512, 3)):
        # The TDM wraps each block's 3×3 conv, so it sees the first block's map before the stride.
        tdms = long_term_tdm(planes, side) + (blocks - 1) * long_term_tdm(planes, out_side(side, 2))
        parts[name] = bottleneck_stage(cin, planes, blocks, 2, side) + tdms
        side, cin = out_side(side, 2), 4 * planes
    parts["head"] = 2048 * num_classes
    return parts
