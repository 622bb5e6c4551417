"""`aknet bench` and aknet_cli.analysis.bench: interleaving, statistics, memory, floor, CLI.

Nothing here asserts a speed: timings on a shared CPU are noise. Tests check what is timed,
how it is summarised and that the derived columns are the documented formulas; speed goals
live in benchmarks/.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from aknet_cli.analysis import bench, flops
from aknet_cli.cli.main import app
from cli_helpers import assert_one_line_error

runner = CliRunner()
SMALL = dict(backbone="tsm_resnet18", frames=4, size=64, num_classes=10)


def test_interleaving_rotates_the_order_and_drops_warmup():
    calls: list[str] = []

    def make(name, sleep):
        def fn():
            calls.append(name)
            time.sleep(sleep)
        return fn

    fns = {"a": make("a", 0.0), "b": make("b", 0.004), "c": make("c", 0.0)}
    times = bench.time_interleaved(fns, runs=4, warmup=2, device=torch.device("cpu"))
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4, "c": 4}
    rounds = [calls[i:i + 3] for i in range(0, len(calls), 3)]
    assert rounds == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert min(times["b"]) >= 0.004


def test_summary_matches_numpy():
    secs = [0.010, 0.013, 0.011, 0.050, 0.012, 0.009, 0.014]
    s = bench.summarize(secs)
    ms = np.array(secs) * 1e3
    assert s["median"] == pytest.approx(np.median(ms))
    assert s["p25"] == pytest.approx(np.percentile(ms, 25))
    assert s["p75"] == pytest.approx(np.percentile(ms, 75))
    assert (s["min"], s["max"]) == pytest.approx((9.0, 50.0))
    assert s["spread_pct"] == pytest.approx(100 * (np.percentile(ms, 75) - np.percentile(ms, 25)) / np.median(ms))


def test_peak_memory_sees_a_known_allocation():
    n = 4_000_000  # 16 MB of float32, alive together with a second 16 MB tensor

    def fn():
        a = torch.ones(n)
        b = a * 2
        return float(b[0])

    peak = bench.peak_memory_mb(fn, torch.device("cpu"))
    if peak is None:
        pytest.skip("this torch's profiler has no CPU memory timeline")
    assert 32.0 <= peak < 40.0


@pytest.fixture(scope="module")
def result():
    # Memory is measured by its own test (the profiler is slow); one round is enough here.
    cfg = bench.BenchConfig(splits=("none", "res2", "res4"), batches=(1, 2), runs=1, warmup=0, memory=False,
                            options={"transform_rank": 8}, **SMALL)
    return bench.run_bench(cfg)


def test_rows_carry_the_documented_fields(result):
    rows = result["rows"]
    assert [(r["split"], r["batch"]) for r in rows] == [(s, b) for b in (1, 2) for s in ("none", "res2", "res4")]
    need = {"model", "split", "alpha", "batch", "gflops", "latency_ms_median", "clips_per_s", "peak_mem_mb",
            "latency_ratio", "flops_ratio", "floor_ratio", "ms_per_gflop_after_split",
            "backbone_ms_per_gflop_after_split"}
    for r in rows:
        assert need <= set(r)
        assert r["clips_per_s"] == pytest.approx(r["batch"] * 1e3 / r["latency_ms_median"])
        assert r["latency_ms_p25"] <= r["latency_ms_median"] <= r["latency_ms_p75"]
    assert result["environment"]["threads"] == torch.get_num_threads()
    # the machine a timing belongs to, as docs/bench.md lists it
    assert result["environment"]["cpu_kernels"] == torch.backends.cpu.get_cpu_capability()
    assert result["environment"]["cpu"]
    json.dumps(result, allow_nan=False)


def test_gflops_are_the_flop_counter_s(result):
    for r in result["rows"]:
        want = flops.count(split=r["split"], alpha=0.3, options={} if r["split"] == "none" else {"transform_rank": 8},
                           **SMALL).gflops
        assert r["gflops"] == pytest.approx(want)


def test_floor_and_after_split_rates_follow_their_formulas(result):
    rows = {(r["split"], r["batch"]): r for r in result["rows"]}
    backbone = flops.build_counted_model("tsm_resnet18", split="none", alpha=0.3, frames=4, num_classes=10).eval()
    x = flops.clip_input(backbone, 4, 64)
    for split in ("res2", "res4"):
        # F's GFLOPs counted independently: fvcore on the backbone's forward up to the split.
        f_gf = flops.flop_analysis(bench._Until(backbone, split), (x,)).total() / 1e9
        for b in (1, 2):
            r, base = rows[(split, b)], rows[("none", b)]
            assert r["f_flops_ratio"] == pytest.approx(f_gf / base["gflops"])
            assert r["latency_ratio"] == pytest.approx(r["latency_ms_median"] / base["latency_ms_median"])
            assert r["floor_ratio"] == pytest.approx(r["f_latency_ms"] / base["latency_ms_median"])
            ak = (r["latency_ms_median"] - r["f_latency_ms"]) / (b * (r["gflops"] - f_gf))
            bb = (base["latency_ms_median"] - r["f_latency_ms"]) / (b * (base["gflops"] - f_gf))
            assert r["ms_per_gflop_after_split"] == pytest.approx(ak)
            assert r["backbone_ms_per_gflop_after_split"] == pytest.approx(bb)
            # One noisy round can leave the backbone's after-split time negative: no factor then.
            assert r["after_split_factor"] == (pytest.approx(ak / bb) if bb > 0 else None)


def test_breakdown_names_every_part_once(result):
    for r in result["rows"]:
        if r["split"] == "none":
            assert r["parts_ms"] is None
            continue
        assert list(r["parts_ms"]) == ["F", "heatmap", "selection + ranking", "transform", "1-D subnet", "head", "other"]
        assert all(v >= 0 for v in r["parts_ms"].values())
        assert r["parts_ms"]["F"] > 0 and r["parts_ms"]["1-D subnet"] > 0


def test_breakdown_leaves_no_hooks_and_skips_absent_parts():
    model = flops.build_counted_model("tsm_resnet18", split="res3", alpha=0.3, frames=4, num_classes=10,
                              options={"position": "none"}).eval()
    x = flops.clip_input(model, 4, 64)
    out = bench.part_breakdown(model, x, runs=1, warmup=0, device=torch.device("cpu"))
    assert "transform" not in out["parts_ms"]
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    with torch.inference_mode():
        model(x)  # still runs without the timers


# ------------------------------------------------------------------------------- CLI
def _invoke(*args):
    return runner.invoke(app, ["bench", *args])


def test_cli_json_and_table():
    args = ["-b", "tsm_resnet18", "--split", "res3", "--frames", "4", "--size", "64", "--num-classes", "10",
            "--runs", "1", "--warmup", "0", "--no-memory", "--no-breakdown", "--set", "position=embedding"]
    res = _invoke(*args, "--json")
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert [r["split"] for r in payload["rows"]] == ["none", "res3"]
    assert payload["config"]["options"] == {"position": "embedding"}
    assert payload["rows"][1]["peak_mem_mb"] is None and payload["rows"][1]["parts_ms"] is None
    res = _invoke(*args)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "F floor: F alone" in text and "plain backbone" in text and "res3" in text


@pytest.mark.parametrize("args, fragment", [
    (["--split", "res9"], "unknown split 'res9'"),
    (["--batch", "0"], "--batch"),
    (["--batch", "one"], "--batch expects comma-separated integers"),
    (["--batch", "1,,2"], "--batch expects a comma-separated list without empty items"),
    (["--split", "none,"], "--split expects a comma-separated list without empty items"),
    (["--device", "tpu"], "--device must be cpu or cuda"),
    (["--alpha", "0"], "--alpha"),
    (["--set", "nope=1"], "unknown AK-Net option 'nope'"),
    (["--set", "split=res2"], "use --split and --alpha"),
    (["-b", "no_such_net"], "no_such_net"),
    (["--plot", "out.jpg"], "--plot expects a .png"),
    (["--runtime", "tensorrt"], "--runtime must be one of torch, onnxruntime"),
    (["--runtime", "onnxruntime", "--amp"], "drop --device cuda and --amp"),
    (["--transform-rank", "0"], "positive integer or 'none'"),
])
def test_cli_user_mistakes_are_one_line(args, fragment):
    assert_one_line_error(_invoke(*args), fragment)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cli_cuda_without_gpu_is_one_line():
    assert_one_line_error(_invoke("--device", "cuda"), "no CUDA device")


def test_fuse_times_the_folded_models(monkeypatch):
    from aknet_cli import models as model_pkg

    folded = []
    real = model_pkg.fuse_for_inference

    def spy(model, **kw):
        out = real(model, **kw)
        folded.append(sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in out.modules()))
        return out

    monkeypatch.setattr(model_pkg, "fuse_for_inference", spy)
    cfg = bench.BenchConfig(splits=("none", "res4"), runs=1, warmup=0, memory=False, breakdown=False,
                            options={"transform_rank": 8}, fuse=True, **SMALL)
    out = bench.run_bench(cfg)
    assert out["environment"]["fused"] is True
    assert folded == [0, 0]  # the backbone and AK-Net were both timed without a single BatchNorm


def test_onnxruntime_times_exported_graphs_that_match_eager(monkeypatch):
    """`--runtime onnxruntime` runs ONNX Runtime sessions (not the PyTorch modules) on every
    model, F included, each export checked against eager before it is timed."""
    pytest.importorskip("onnxruntime")
    from aknet_cli.convert import export as export_mod

    reports, runs = [], []
    real_export, real_session = export_mod.export_model, export_mod.ort_session

    def export_spy(model, out, **kw):
        reports.append(real_export(model, out, **kw))
        return reports[-1]

    def session_spy(path, threads=None):
        sess = real_session(path, threads)

        class Counting:
            def run(self, *a, **k):
                runs.append(str(path))
                return sess.run(*a, **k)

            def __getattr__(self, name):
                return getattr(sess, name)
        return Counting()

    monkeypatch.setattr(export_mod, "export_model", export_spy)
    monkeypatch.setattr(export_mod, "ort_session", session_spy)
    cfg = bench.BenchConfig(splits=("none", "res4"), batches=(1, 2), runs=2, warmup=1, options={"transform_rank": 8},
                            runtime="onnxruntime", **SMALL)
    out = bench.run_bench(cfg)
    assert out["environment"]["runtime"] == "onnxruntime" and out["environment"]["onnxruntime"]
    # backbone, AK-Net res4 and F up to res4, exported once (dynamic batch) and checked
    assert len(reports) == 3 and all(r.batch == "dynamic" for r in reports)
    assert all(r.max_abs_logit_diff < 1e-3 for r in reports)
    assert [r.keypoints_equal for r in reports].count(True) == 1
    # every timed call went through a session: 3 models x (2 + 1) rounds x 2 batch sizes, plus
    # the one check run per export
    assert len(runs) == 3 * 3 * 2 + 3
    rows = out["rows"]
    assert [(r["split"], r["batch"]) for r in rows] == [("none", 1), ("res4", 1), ("none", 2), ("res4", 2)]
    assert all(r["peak_mem_mb"] is None and r["parts_ms"] is None for r in rows)
    assert all(r["floor_ratio"] > 0 for r in rows if r["split"] == "res4")


def test_ratio_of_two_interleaved_models_is_the_median_of_the_per_round_ratios():
    """Round by round: a slow round of the machine slows both models alike and cancels out."""
    a = [0.9, 1.8, 0.95, 4.5, 0.85]  # seconds; rounds 2 and 4 were slow for both
    b = [1.0, 2.0, 1.0, 5.0, 1.0]
    got = bench.ratio_summary(a, b)
    assert got["median"] == pytest.approx(0.9) and got["rounds"] == 5
    assert (got["min"], got["max"]) == (pytest.approx(0.85), pytest.approx(0.95))
    assert got["p25"] == pytest.approx(0.9) and got["p75"] == pytest.approx(0.9)
    with pytest.raises(ValueError):
        bench.ratio_summary([1.0], [1.0, 2.0])
