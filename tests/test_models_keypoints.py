"""Issue #9: every selected keypoint counts, frames stay together in the ranking, the sparsity
term knows α, fp32 selection under autocast, BN recalibration. Each test checks the model
against a computation written from the paper or from first principles."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from aknet_cli._registry import create_backbone
from aknet_cli.models.kernels_1d import Converter

# --------------------------------------------------------------------------- item 1
# Split → side of the split map at 224² (N = round(0.3 · 8 · side²) keypoints).
_SPLITS = {"res2": 56, "res3": 28, "res4": 14}


def _positive(module: nn.Module) -> nn.Module:
    """Make every path carry signal: |weights|, identity BatchNorm. With a positive input every
    ReLU is then the identity and a zero gradient can only mean "never read"."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                m.weight.abs_()
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
                m.weight.fill_(1.0)
                m.bias.zero_()
    return module.eval()


def _row_receptive_fields(stages_2d: nn.Module, channels: int, side: int) -> list[int]:
    """For each output row of the 2-D stages on a ``side``-row map: how many input rows it
    reads (clipped at the borders), measured by back-propagating from that row. The count along
    rows does not depend on the width, so the map is 4 columns wide to stay cheap."""
    x = torch.rand(1, channels, side, 4, requires_grad=True)
    y = stages_2d(x)
    counts = []
    for i in range(y.shape[2]):
        (g,) = torch.autograd.grad(y[:, :, i].sum(), x, retain_graph=True)
        counts.append(int((g.abs().sum(dim=(0, 1, 3)) > 0).sum()))
    return counts


@pytest.mark.parametrize("backbone", ["tsm_resnet18", "tsm_resnet50", "tdn_resnet50"])
@pytest.mark.parametrize("split", ["res2", "res3", "res4"])
def test_every_selected_point_reaches_the_output_after_each_split(backbone, split):
    torch.manual_seed(0)
    net = create_backbone(backbone, num_classes=5, num_segments=8)
    stages = net.stages_after(split)
    channels = net.specs[split].channels
    side = _SPLITS[split]
    n = int(math.floor(0.3 * 8 * side * side + 0.5))

    subnet_1d = _positive(nn.Sequential(*(Converter(hook=net.convert_1d)(s, name) for name, s in stages)))
    points = torch.rand(1, channels, n, requires_grad=True)
    out = subnet_1d(points)
    # The area rule: each stride-2 stage keeps one point in four, rounded up, like 2×2 strides.
    expected_len = n
    for _ in stages:
        expected_len = math.ceil(expected_len / 4)
    assert out.shape[-1] == expected_len
    (grad,) = torch.autograd.grad(out.sum(), points)
    dead = int((grad.abs().sum(dim=1)[0] == 0).sum())
    assert dead == 0, f"{dead} of {n} selected points never reach the classifier"


@pytest.mark.parametrize("split", ["res2", "res3", "res4"])
def test_no_1d_output_reads_fewer_points_than_a_2d_output_reads_rows(split):
    """The 1-D sequence stands for the kept (row) axis: each output of the converted ResNet-18
    stages must read at least as many points as the 2-D stages' output reads rows, at the
    border (both clipped) and in the interior."""
    torch.manual_seed(0)
    net = create_backbone("resnet18", num_classes=5, num_segments=1)
    stages = net.stages_after(split)
    channels, side = net.specs[split].channels, _SPLITS[split]
    n = int(math.floor(0.3 * 8 * side * side + 0.5))
    rows = _row_receptive_fields(_positive(nn.Sequential(*(s for _, s in stages))), channels, side)

    subnet_1d = _positive(nn.Sequential(*(Converter()(s, name) for name, s in stages)))
    length = math.ceil(n / 4 ** len(stages))
    probes = sorted({0, 1, length // 2, length - 2, length - 1})
    # One probe per batch row: the gradient of row b's output j_b is that output's footprint.
    points = torch.rand(1, channels, n).expand(len(probes), channels, n).clone().requires_grad_(True)
    out = subnet_1d(points)
    (g,) = torch.autograd.grad(sum(out[b, :, j].sum() for b, j in enumerate(probes)), points)
    for b, j in enumerate(probes):
        reach = int((g[b].abs().sum(dim=0) > 0).sum())
        need = min(rows) if j in (0, length - 1) else max(rows)
        assert reach >= need, f"{split}: output {j} reads {reach} points, a 2-D output reads {need} rows"


def _area_reference(x: torch.Tensor, w2d: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """A strided 2-D conv (kernel ``k×k``, padding ``k//2``) on the point sequence under the
    area rule, written out: the summed kernel at the kept axis's stride ``sh``, then the mean of
    each group of ``sw`` consecutive outputs (a partial last group averages what it has)."""
    sh, sw = stride
    w = w2d.sum(dim=-1)  # (Co, Ci, k): eq. 11
    k = w.shape[-1]
    pad = k // 2
    n = x.shape[-1]
    xp = torch.cat([x.new_zeros(*x.shape[:-1], pad), x, x.new_zeros(*x.shape[:-1], pad)], dim=-1)
    strided = [torch.einsum("oik,bik->bo", w, xp[..., i:i + k]) for i in range(0, n + 2 * pad - k + 1, sh)]
    groups = [strided[g:g + sw] for g in range(0, len(strided), sw)]
    return torch.stack([sum(grp) / len(grp) for grp in groups], dim=-1)


@pytest.mark.parametrize("n", [29, 30, 470])
def test_area_strided_block_matches_the_written_out_reduction(n):
    import torchvision

    torch.manual_seed(5)
    block = torchvision.models.resnet.Bottleneck(64, 32, stride=2, downsample=nn.Sequential(
        nn.Conv2d(64, 128, 1, stride=2, bias=False), nn.BatchNorm2d(128))).eval()
    conv = Converter(stride_mode="area")(block, "b").eval()
    x = torch.randn(2, 32, n, dtype=torch.float64)
    with torch.no_grad():
        got = conv.conv2.double()(x)
        torch.testing.assert_close(got, _area_reference(x, block.conv2.weight.double(), (2, 2)))
        # The 1×1 shortcut: the mean of each group of four points, then the pointwise conv.
        xs = torch.randn(2, 64, n, dtype=torch.float64)
        means = torch.stack([xs[..., i:i + 4].mean(-1) for i in range(0, n, 4)], dim=-1)
        w = block.downsample[0].weight.double()[:, :, 0, 0]
        torch.testing.assert_close(conv.downsample[0].double()(xs), torch.einsum("oi,bin->bon", w, means))
        assert conv.double()(torch.randn(1, 64, n, dtype=torch.float64)).shape[-1] == math.ceil(n / 4)


# --------------------------------------------------------------------------- item 2
def _runs(frames: list[int]) -> int:
    return sum(1 for i, t in enumerate(frames) if i == 0 or t != frames[i - 1])


def test_default_ranking_keeps_each_frames_points_contiguous():
    from aknet_cli.models.aknet import build_aknet

    model = build_aknet("resnet18", split="res4", num_classes=3, num_segments=8, position="none")
    h = w = 14  # res4 at 224²
    tau = model.config.tau
    assert isinstance(tau, float) and tau >= h + w - 1  # the number used is recorded, not "auto"
    g = torch.Generator().manual_seed(0)
    heat = torch.rand(1, 8, h, w, generator=g)
    _, coords = model.selector(torch.zeros(1, 8, 1, h, w), heat)
    assert coords.shape[1] == 470
    got = [tuple(p) for p in coords[0].tolist()]
    # Eq. 7 with spatial continuity first, written out: frame descending, then x + y
    # descending, ties by flat position.
    picked = torch.topk(heat.flatten(), 470).indices.tolist()
    expected = sorted(((i // (h * w), i % (h * w) // w, i % w) for i in picked),
                      key=lambda p: (-p[0], -(p[1] + p[2]), p[0] * h * w + p[1] * w + p[2]))
    assert got == expected
    assert _runs([p[0] for p in got]) == len({p[0] for p in got}) == 8


@pytest.mark.parametrize("tau", [2.0, 27.0])
def test_a_numeric_tau_ranks_by_the_literal_key(tau):
    from aknet_cli.models.selection import KeypointSelector

    h = w = 14
    g = torch.Generator().manual_seed(1)
    heat = torch.rand(1, 8, h, w, generator=g)
    _, coords = KeypointSelector(0.3, tau=tau)(torch.zeros(1, 8, 1, h, w), heat)
    frames = [p[0] for p in coords[0].tolist()]
    keys = [x + y + tau * t for t, y, x in coords[0].tolist()]
    assert keys == sorted(keys, reverse=True)
    # τ = 2 interleaves frames (many more runs than frames); τ = h + w − 1 does not.
    assert (_runs(frames) > 8 * 10) if tau == 2.0 else (_runs(frames) == 8)


def test_convert_1d_tau_option_names_itself(tmp_path):
    from cli_helpers import assert_one_line_error
    from typer.testing import CliRunner

    from aknet_cli.cli.main import app

    result = CliRunner().invoke(app, ["convert-1d", "-c", str(tmp_path / "none.pt"), "-o", str(tmp_path / "o.pt"),
                                      "--tau", "soon"])
    assert_one_line_error(result, "--tau", "auto")


# --------------------------------------------------------------------------- item 3
def _numpy_threshold_norm(raw: torch.Tensor, alpha: float, scale: float):
    """σ((h − c)/s) written out with NumPy: c halfway between the N-th and (N+1)-th largest
    score of the clip, s = scale·(population std of the clip)."""
    import numpy as np

    out = []
    for clip in raw.detach().double().numpy():
        flat = clip.reshape(-1)
        n = int(np.floor(alpha * flat.size + 0.5))
        desc = np.sort(flat)[::-1]
        c = (desc[n - 1] + desc[n]) / 2
        s = scale * flat.std()
        out.append(1 / (1 + np.exp(-(clip - c) / s)))
    return torch.from_numpy(np.stack(out))


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.5])
def test_threshold_normalisation_is_centred_on_the_top_n_boundary(alpha):
    from aknet_cli.models.heatmap import ChannelHeatmap

    torch.manual_seed(0)
    b, t, c, h, w = 2, 4, 32, 6, 5
    x = torch.rand(b * t, c, h, w)
    hm = ChannelHeatmap(c, alpha=alpha, norm="threshold", scale=0.1)
    raw = hm.scores(x, t)
    out = hm(x, t)
    torch.testing.assert_close(out.double(), _numpy_threshold_norm(raw, alpha, 0.1), rtol=1e-4, atol=1e-5)
    n = int(math.floor(alpha * t * h * w + 0.5))
    # Exactly the N points the selector takes sit above 0.5: the term's zero set is α-aware.
    assert ((out > 0.5).flatten(1).sum(1) == n).all()
    # Scale- and shift-free: 3h + 7 normalises to the same heatmap.
    torch.testing.assert_close(hm.normalize(3 * raw + 7), out, rtol=1e-4, atol=1e-5)


def test_sparsity_term_on_threshold_heatmap_asks_for_a_margin_not_for_extremes():
    """Descending r_e alone on the SE weights (the issue's experiment): min-max pushes points
    to the extremes whatever α is; centred on the threshold, the term widens the gap at the
    top-N boundary, measured in units of the clip's spread, and keeps N points above 0.5."""
    from aknet_cli.models.heatmap import ChannelHeatmap
    from aknet_cli.models.loss import sparsity_regularizer

    def train(norm):
        torch.manual_seed(0)
        x = torch.rand(8, 64, 7, 7) * torch.rand(1, 64, 1, 1) * 2  # channels of different scales
        hm = ChannelHeatmap(64, alpha=0.3, norm=norm)
        opt = torch.optim.Adam(hm.parameters(), lr=1e-2)
        for _ in range(150):
            opt.zero_grad()
            sparsity_regularizer(hm(x, 8)).backward()
            opt.step()
        with torch.no_grad():
            raw, heat = hm.scores(x, 8).flatten(), hm(x, 8).flatten()
        desc = raw.sort(descending=True).values
        n = int(math.floor(0.3 * raw.numel() + 0.5))
        gap = float((desc[n - 1] - desc[n]) / raw.std(unbiased=False))
        return gap, float((heat > 0.9).float().mean())

    torch.manual_seed(0)
    x0 = torch.rand(8, 64, 7, 7) * torch.rand(1, 64, 1, 1) * 2
    with torch.no_grad():
        raw0 = ChannelHeatmap(64, alpha=0.3).scores(x0, 8).flatten()
    desc0 = raw0.sort(descending=True).values
    n0 = int(math.floor(0.3 * raw0.numel() + 0.5))
    gap0 = float((desc0[n0 - 1] - desc0[n0]) / raw0.std(unbiased=False))

    gap_t, high_t = train("threshold")
    gap_m, high_m = train("minmax")
    assert gap_t > 2 * gap0 and gap_t > 2 * gap_m, (gap0, gap_t, gap_m)
    assert high_t <= 0.3 + 1e-6  # at most the selected points are near 1


@pytest.mark.parametrize("norm", ["threshold", "minmax"])
def test_flat_clips_do_not_blow_up_the_gradient(norm):
    from aknet_cli.models.heatmap import ChannelHeatmap

    hm = ChannelHeatmap(4, alpha=0.3, norm=norm)
    raw = (1.0 + 1e-5 * torch.rand(1, 2, 5, 5, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    heat = hm.normalize(raw)
    assert torch.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
    (g,) = torch.autograd.grad(heat.sum(), raw)
    # The spread is floored at 1% of the mean magnitude (1.0 here): min-max's slope is then at
    # most 1/0.01 per point, the sigmoid's at most 0.25/(0.1·0.01), plus what the centre and
    # spread pass on; an unguarded min-max would give ~1/1e-5 = 1e5.
    bound = 100.0 * 50 if norm == "minmax" else 250.0 * 50
    assert g.abs().max() < bound


# --------------------------------------------------------------------------- item 4
def test_heatmap_and_selection_stay_fp32_under_bf16_autocast():
    """Res2 map of a 224² clip: 8×56×56 = 25,088 positions, N = 7,526. The backbone runs in
    bf16; the heatmap, its normalisation and the top-N must not."""
    from aknet_cli.models.aknet import build_aknet

    torch.manual_seed(0)
    model = build_aknet("tsm_resnet18", split="res2", num_classes=5, num_segments=8, position="none").eval()
    x = torch.randn(1, 8, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    seen = {}
    model.features.register_forward_hook(lambda m, i, o: seen.__setitem__("features", o.dtype))
    scores = model.heatmap.scores

    def spy(*args, **kw):
        seen["scores"] = out = scores(*args, **kw)
        return out

    model.heatmap.scores = spy

    def keypoints(autocast: bool):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            _, kp = model(x, return_keypoints=True)
        flat = kp[0, :, 0] * 56 * 56 + kp[0, :, 1] * 56 + kp[0, :, 2]
        return set(flat.tolist()), seen["scores"]

    ref, _ = keypoints(False)
    got, heat = keypoints(True)
    assert seen["features"] == torch.bfloat16  # the backbone did run in bf16
    assert heat.dtype == torch.float32
    n = len(ref)
    assert n == 7526
    nth = heat.flatten().topk(n).values[-1]
    assert int((heat.flatten() == nth).sum()) <= 3  # bf16 scores tied 474 positions here
    # What remains comes from the bf16 features themselves (0.5% relative error): 44 of 7,526
    # here, against 108 with a bf16 heatmap. fp16 autocast gives 5.
    assert len(ref - got) <= 0.01 * n
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.heatmap.normalize(heat.bfloat16()).dtype == torch.float32
