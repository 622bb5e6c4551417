"""`aknet flops` and aknet_cli.analysis.flops: the convention, Table I/II, selection handles, the CLI."""

from __future__ import annotations

import json
import math

import flop_formulas
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from aknet_cli import create_backbone
from aknet_cli.analysis import flops
from aknet_cli.cli.main import app
from aknet_cli.models.aknet import build_aknet

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["flops", *args])


def _stderr(result) -> str:
    try:
        return result.stderr
    except (ValueError, AttributeError):  # older click mixes the streams
        return result.output


# ------------------------------------------------------------------------ convention
def test_resnet50_8_frames_matches_published_33g():
    """The issue's acceptance check: 33.16 G ±0.5% (BN counted in train mode, as fvcore's
    default does for a model in train mode); our convention (eval mode) gives 32.88 G."""
    model = create_backbone("resnet50", num_classes=174, num_segments=8)
    x = torch.zeros(1, 8, 3, 224, 224)
    train_bn = flops.count_model(model, x, bn_mode="train").gflops
    eval_bn = flops.count_model(model, x).gflops
    assert train_bn == pytest.approx(33.16, rel=0.005)
    assert eval_bn == pytest.approx(32.89, rel=0.005)
    assert eval_bn < train_bn  # BN: 2 FLOPs/element in eval, 5 in train


def test_plain_backbone_parts_sum_to_total():
    rep = flops.count("resnet18", split="none", size=112)
    names = [p.name for p in rep.parts]
    assert names[:5] == ["stem", "res2", "res3", "res4", "res5"]
    # count_model files any FLOP outside the named parts under an "other" part: there is none,
    # so the parts alone make up the total.
    assert names == ["stem", "res2", "res3", "res4", "res5", "head"]
    assert not any("other" in n for n in names)
    assert sum(p.flops for p in rep.parts) == rep.flops
    # Each part against the conv formula C_in·C_out·k²·H_out·W_out (+2/element for eval BN), ×8 frames.
    t, side = 8, 112 // 4
    assert rep.part("stem").flops == t * (3 * 64 * 7 * 7 * 56 * 56 + 2 * 64 * 56 * 56)
    assert rep.part("stem").flops == t * flop_formulas.resnet_stem(112)
    cin = 64
    for name, planes, stride in (("res2", 64, 1), ("res3", 128, 2), ("res4", 256, 2), ("res5", 512, 2)):
        assert rep.part(name).flops == t * flop_formulas.basic_stage(cin, planes, 2, stride, side), name
        cin, side = planes, flop_formulas.out_side(side, stride)
    assert rep.part("head").flops == t * 512 * 174
    assert rep.params == sum(p.numel() for p in create_backbone("resnet18", num_classes=174, num_segments=8).parameters())
    assert "eval mode" in rep.convention and "1 fused multiply-add = 1 FLOP" in rep.convention


# --------------------------------------------------------------------------- Table I
@pytest.mark.parametrize(
    "cfg",
    [
        flops.LayerConfig(cin=16, cout=16, ks=3, kt=3, kp=3, t=4, h=7, w=7),
        flops.LayerConfig(cin=8, cout=8, ks=5, kt=1, kp=1, t=2, h=6, w=5, n=17),
        flops.LayerConfig(cin=12, cout=24, ks=3, kt=3, kp=5, t=3, h=5, w=5),
    ],
)
def test_table_i_formulas_equal_fvcore_on_real_modules(cfg):
    rows = {r["method"]: r for r in flops.table_i(cfg)}
    assert set(rows) == {"3D CNN", "(2+1)D CNN", "2D CNN", "Ours (1-D)"}
    for method, r in rows.items():
        if method == "(2+1)D CNN" and cfg.cin != cfg.cout:
            # Table I's (2+1)D formula assumes C_in == C_out for the temporal conv; we say so.
            assert not r["match"] and "C_in = C_out" in r["note"]
            assert r["flops_fvcore"] == cfg.cin * cfg.cout * cfg.ks**2 * cfg.t * cfg.h * cfg.w + cfg.cout**2 * cfg.kt * cfg.t * cfg.h * cfg.w
            continue
        assert r["match"], r
        assert r["flops_formula"] == r["flops_fvcore"] and r["params_formula"] == r["params_fvcore"]
    n = cfg.points()
    assert rows["Ours (1-D)"]["flops_fvcore"] == cfg.cin * cfg.cout * cfg.kp * n


# ---------------------------------------------------------------------------- AK-Net
@pytest.fixture(scope="module")
def aknet_small():
    torch.manual_seed(0)
    model = build_aknet("tsm_resnet18", split="res3", alpha=0.3, num_classes=10, num_segments=4,
                        tau=2.0, ranking=True, position="transform", stride_mode="area").eval()
    return model, torch.randn(1, 4, 3, 96, 96)


def _conv_seq_flops(stage: nn.Module, length: int) -> tuple[int, int]:
    """Σ C_in·C_out·k_p·L_out over the Conv1d layers of a converted ResNet stage, with every
    layer's sequence length derived here from the input length and the strides."""
    total = 0
    for block in stage:
        main = [block.conv1, block.conv2] + ([block.conv3] if hasattr(block, "conv3") else [])
        l_in, l = length, length
        for conv in main:
            conv = getattr(conv, "net", conv)
            assert isinstance(conv, nn.Conv1d)
            k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
            # Area rule (AreaConv1d): a mean of `pool` consecutive points before or after.
            pool, first = getattr(conv, "pool", 1), getattr(conv, "pool_first", False)
            if first:
                l = math.ceil(l / pool)
            l = (l + 2 * p - k) // s + 1
            total += conv.in_channels * conv.out_channels * k * l
            if not first:
                l = math.ceil(l / pool)
        if block.downsample is not None:
            ds = block.downsample[0]
            k, s = ds.kernel_size[0], ds.stride[0]
            pool, first = getattr(ds, "pool", 1), getattr(ds, "pool_first", False)
            l_ds = math.ceil(l_in / pool) if first else l_in
            total += ds.in_channels * ds.out_channels * k * ((l_ds - k) // s + 1)
        length = l
    return total, length


def test_point_net_matches_table_i_per_layer(aknet_small):
    model, x = aknet_small
    t, h = 4, 96 // 8  # res3 of a ResNet-18: stride 8
    n = max(1, math.floor(0.3 * t * h * h + 0.5))
    expected, length = 0, n
    for name in ("res4", "res5"):
        part, length = _conv_seq_flops(model.point_net[name], length)
        expected += part
    with torch.no_grad():
        fa = flops.flop_analysis(model, (x,))
        # 1×1 kernels run as a batched matrix product (PointConv1d), the others as conv1d
        counted = sum(fa.by_operator(f"point_net.{s}").get(op, 0) for s in ("res4", "res5") for op in ("conv", "bmm"))
    assert counted == expected
    rep = flops.count_model(model, x)
    one_d = sum(rep.part(f"{s} (1-D)").flops for s in ("res4", "res5"))
    assert one_d >= expected  # plus BatchNorm1d at 2 FLOPs/element


def test_selection_is_counted(aknet_small):
    """The cost model of docs/flops.md on the fixture: T=4 frames of a 12×12 res3 map with
    C=128 channels, N = round(0.3·576) = 173 points."""
    model, x = aknet_small
    t, side, c = 4, 96 // 8, 128
    positions = t * side * side
    n = 173
    with torch.no_grad():
        fa = flops.flop_analysis(model, (x,))
        ops = fa.by_operator("selector")
        heat_ops = fa.by_operator("heatmap")
        pos_ops = fa.by_operator("position")
    for op in ("topk", "sort", "gather"):
        assert ops[op] > 0, op
    assert ops["topk"] == round(positions * math.log2(n))  # top-N of all T·H·W scores
    # ranking: the selected flat indices sorted, then the stable sort on x + y + τ·t
    assert ops["sort"] == 2 * round(n * math.log2(n))
    assert ops["gather"] == n + c * n  # the ranked order of the indices, then the C-dim features
    assert heat_ops["softmax"] == 3 * t * c  # ω over C channels, per frame (eq. 5)
    # T's max-pool over the points of its 1024-wide features (eq. 9), and eq. 8's d_max over N
    assert pos_ops["amax"] == 1024 * n + n
    rep = flops.count_model(model, x)
    assert rep.part("selection").flops == ops["topk"] + ops["sort"] + ops["gather"]
    assert rep.part("heatmap").flops > 0
    assert not any(k in rep.unsupported_ops for k in ("aten::topk", "aten::sort", "aten::softmax"))
    assert sum(p.flops for p in rep.parts) == rep.flops


def test_position_embedding_lookup_is_counted(aknet_small):
    _, x = aknet_small
    torch.manual_seed(0)
    model = build_aknet("resnet18", split="res3", alpha=0.3, num_classes=10, num_segments=4,
                        tau=2.0, position="embedding").eval()
    with torch.no_grad():
        ops = flops.flop_analysis(model, (x,)).by_operator("position")
    assert ops["index"] == 3 * 173 * 128  # E_t[t], E_y[y], E_x[x]: one C-vector per point each


class _Op(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


_IDX = torch.tensor([4, 0, 2])


@pytest.mark.parametrize(
    "fn, expected",
    [
        pytest.param(lambda x: x.sort(dim=1).values, 3 * 5 * 40 * math.log2(40), id="sort-dim1"),
        pytest.param(lambda x: x.sort(dim=0).values, 3 * 5 * 40 * math.log2(3), id="sort-dim0"),
        pytest.param(lambda x: x.argsort(dim=2), 3 * 5 * 40 * math.log2(5), id="argsort"),
        pytest.param(lambda x: x.gather(1, torch.zeros(3, 7, 5, dtype=torch.long)), 3 * 7 * 5, id="gather"),
        pytest.param(lambda x: x.index_select(1, _IDX), 3 * 3 * 5, id="index_select"),
        pytest.param(lambda x: x[:, :, _IDX], 3 * 40 * 3, id="index"),
        pytest.param(lambda x: x.softmax(dim=1), 3 * 3 * 40 * 5, id="softmax"),
        pytest.param(lambda x: x.log_softmax(dim=2), 3 * 3 * 40 * 5, id="log_softmax"),
        pytest.param(lambda x: x.max(dim=1).values, 3 * 40 * 5, id="max"),
        pytest.param(lambda x: x.amax(dim=(1, 2)), 3 * 40 * 5, id="amax"),
        pytest.param(lambda x: x.min(dim=2).values, 3 * 40 * 5, id="min"),
        pytest.param(lambda x: x.amin(dim=0), 3 * 40 * 5, id="amin"),
        pytest.param(lambda x: torch.nn.functional.max_pool1d(x.flatten(2), 4), 3 * 40 * 5, id="max_pool1d"),
    ],
)
def test_selection_op_cost_model(fn, expected):
    """docs/flops.md's table, op by op, on a (3, 40, 5) input."""
    with torch.no_grad():
        counted = flops.flop_analysis(_Op(fn), (torch.randn(3, 40, 5),)).total()
    assert counted == round(expected)


def test_topk_cost_model():
    class TopK(nn.Module):
        def forward(self, x):
            return x.topk(8, dim=1).values

    with torch.no_grad():
        counted = flops.flop_analysis(TopK(), (torch.randn(2, 100),)).total()
    assert counted == round(200 * math.log2(8))


def test_train_mode_adds_aux_head_only():
    kw = dict(split="res3", frames=4, size=64, num_classes=10)
    inf = flops.count("tsm_resnet18", mode="inference", **kw)
    tr = flops.count("tsm_resnet18", mode="train", **kw)
    assert inf.part("aux head").flops == 0 and "aux_head" in inf.uncalled_modules
    assert tr.part("aux head").flops > 0
    # Training also normalises the heatmap to [0, 1] (eqs. 14-15); inference selects on raw scores.
    normalisation = tr.part("heatmap").flops - inf.part("heatmap").flops
    assert 0 <= normalisation < 0.001 * inf.flops
    assert tr.flops - inf.flops == tr.part("aux head").flops + normalisation
    assert tr.params > inf.params


def test_tdn_aknet_counts_short_term_module():
    rep = flops.count("tdn_resnet18", split="res2", frames=4, size=64, num_classes=10)
    assert rep.part("short-term TDM").flops > 0
    assert rep.part("res3 (1-D)").flops > 0
    # F is the plain TDN's, short-term TDM included: the same FLOPs, part by part.
    plain = flops.count("tdn_resnet18", split="none", frames=4, size=64, num_classes=10)
    for name in ("stem", "res2", "short-term TDM"):
        assert rep.part(name).flops == plain.part(name).flops, name
    # and by hand: the 7×7/2 conv on 12 stacked differences + BN at 16×16, a res2 copy at 8×8,
    # and the fusion's upsampling of 64 channels to 16×16 twice (ResNet-18's res2 has 64).
    hand = (12 * 64 * 49 * 16 * 16 + 2 * 64 * 16 * 16 + flop_formulas.basic_stage(64, 64, 2, 1, 8)
            + 2 * 64 * 16 * 16)
    assert rep.part("short-term TDM").flops == 4 * hand
    assert not any("other" in p.name for p in rep.parts)


def test_table_ii_rows_small(monkeypatch):
    # ResNet-18 stand-ins keep this fast; `aknet flops --table ii` runs the real ResNet-50 rows.
    small = {k: (bb.replace("50", "18"), split, g) for k, (bb, split, g) in flops.PAPER_TABLE_II.items()}
    monkeypatch.setattr(flops, "PAPER_TABLE_II", small)
    rows = flops.table_ii(size=64, frames=4, num_classes=10)
    assert [r["method"] for r in rows] == ["TSM", "TDN", "Ours_TSM", "Ours_TDN"]
    assert [r["paper_gflops"] for r in rows] == [33, 36, 28, 31]
    for r in rows:
        assert r["rel_diff"] == pytest.approx(r["gflops"] / r["paper_gflops"] - 1)
    assert rows[2]["gflops"] < rows[0]["gflops"] and rows[3]["gflops"] < rows[1]["gflops"]


@pytest.fixture(scope="module")
def table_ii_resnet50():
    return {r["method"]: r for r in flops.table_ii(alpha=0.3, frames=8, size=224, num_classes=174)}


def test_table_ii_resnet50_within_documented_tolerances(table_ii_resnet50):
    """docs/flops.md: the baselines within 1% of the published 33 G / 36 G; AK-Net with the
    paper's full transform net 0.5-0.7 G above the paper's 28 G / 31 G, all of that excess in
    the transform net."""
    rows = table_ii_resnet50
    assert {m: (r["backbone"], r["split"]) for m, r in rows.items()} == {
        "TSM": ("tsm_resnet50", "none"), "TDN": ("tdn_resnet50", "none"),
        "Ours_TSM": ("tsm_resnet50", "res4"), "Ours_TDN": ("tdn_resnet50", "res4"),
    }
    for method, paper in (("TSM", 33.0), ("TDN", 36.0)):
        assert rows[method]["paper_gflops"] == paper
        assert abs(rows[method]["gflops"] / paper - 1) <= 0.01, method
    for method, paper in (("Ours_TSM", 28.0), ("Ours_TDN", 31.0)):
        r = rows[method]
        assert r["paper_gflops"] == paper
        assert 0.45 <= r["gflops"] - paper < 0.75, (method, r["gflops"])
        assert r["gflops"] - r["by_part"]["transform net"] <= paper, method
    # The paper: 13% fewer than TSM, 15% fewer than TDN; we count 13% and 12% (docs/flops.md's table).
    assert rows["Ours_TSM"]["gflops"] / rows["TSM"]["gflops"] == pytest.approx(0.87, abs=0.01)
    assert rows["Ours_TDN"]["gflops"] / rows["TDN"]["gflops"] < 0.9


# ------------------------------------------------------------------------------- CLI
def test_cli_json_parses():
    res = _invoke("--backbone", "resnet18", "--size", "64", "--frames", "4", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert {"gflops", "params_m", "by_part", "convention", "unsupported_ops"} <= set(data)
    assert data["by_part"]["res5"]["gflops"] > 0


def test_cli_table_i_json():
    res = _invoke("--table", "i", "--cin", "8", "--cout", "8", "--t", "2", "--h", "5", "--w", "5", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["rows"]
    assert all(r["match"] for r in rows)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--alpha", "1.5"], "alpha"),
        (["--alpha", "0"], "alpha"),
        (["--split", "res5"], "split"),
        (["--backbone", "nope"], "unknown backbone"),
        (["--table", "iii"], "--table"),
        # N points are chosen among the T·H·W = 2·5·5 = 50 positions of Table I's layer
        (["--table", "i", "--t", "2", "--h", "5", "--w", "5", "--n", "51"], "--n must be between 1 and T×H×W = 50"),
        (["--plot", "p.png", "--compare", "resnet18,"], "--compare expects a comma-separated list without empty items"),
    ],
)
def test_cli_bad_values_one_line_exit_1(args, needle):
    res = _invoke(*args)
    assert res.exit_code == 1
    err = _stderr(res).strip()
    assert needle in err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in res.output
    assert isinstance(res.exception, SystemExit)  # a clean exit, not an uncaught error


def test_cli_plot_writes_png_atomically(tmp_path):
    out = tmp_path / "fig5.png"
    res = _invoke("--plot", str(out), "--compare", "tsm_resnet18", "--size", "64", "--frames", "4", "--num-classes", "10")
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["fig5.png"]


def test_cli_plot_with_results(tmp_path):
    csv = tmp_path / "acc.csv"
    csv.write_text("model,split,gflops,top1\ntsm_resnet18,res2,,40.0\ntsm_resnet18,res3,,44.0\ntsm_resnet18,none,1.0,45.0\n")
    out = tmp_path / "acc.png"
    res = _invoke("--plot", str(out), "--results", str(csv), "--size", "64", "--frames", "4", "--num-classes", "10", "--json")
    assert res.exit_code == 0, res.output
    points = json.loads(res.stdout)["points"]
    assert len(points) == 3 and all(p["gflops"] > 0 for p in points)
    assert out.exists()
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    by_split = {p["split"]: p for p in points}
    assert {s: p["top1"] for s, p in by_split.items()} == {"res2": 40.0, "res3": 44.0, "none": 45.0}
    assert by_split["none"]["gflops"] == 1.0  # given in the CSV: kept, not recounted
    # empty cells are counted for that row's backbone and split at the command's size and frames
    for split in ("res2", "res3"):
        expected = flops.count("tsm_resnet18", split=split, frames=4, size=64, num_classes=10).gflops
        assert by_split[split]["gflops"] == pytest.approx(expected, rel=1e-9), split
    assert by_split["res2"]["gflops"] < by_split["res3"]["gflops"]  # Fig. 5's order
