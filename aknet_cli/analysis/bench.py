"""Wall-clock latency of a plain backbone and AK-Net on it, beside their FLOPs.

What is timed, per batch size: the plain backbone, AK-Net at every requested split, and, for
each split, ``F`` alone (the backbone's layers up to the split, shared by both models; issue
#11's floor). Every round runs each of them once, the order rotated round by round, so machine
noise (other processes, frequency scaling) hits all of them alike; the first ``warmup`` rounds
are dropped. Each forward is ``eval()`` under ``torch.inference_mode``; on CUDA the device is
synchronised before the clock starts and before it stops, and ``amp`` runs under autocast
(training's policy, :mod:`aknet_cli.engine.precision`: bfloat16 where the GPU runs it natively, else
float16; CUDA only).

Derived numbers (see ``docs/bench.md``):

* ``latency_ratio`` = AK-Net / backbone; ``flops_ratio`` the same for GFLOPs.
* ``floor_ratio`` = F / backbone: the latency AK-Net cannot go below, since F runs unchanged.
* ``ms_per_gflop_after_split``: ``(ms(model) - ms(F)) / (GFLOPs(model) - GFLOPs(F))``, for
  AK-Net (its heatmap, selection, transform, 1-D subnet, head) and for the backbone's own
  stages after the same split; ``after_split_factor`` is their quotient.

The per-part breakdown is measured in separate rounds with forward hooks (which add a little
overhead and, on CUDA, a synchronisation per part), so its total is reported beside it.
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn

from .._machine import cpu_model
from .._stderr import silenced_stderr
from ..engine.precision import autocast, autocast_dtype
from ..exceptions import ConfigError
from . import flops as F

DEVICES = ("cpu", "cuda")
#: Execution paths: PyTorch eager (optionally with BatchNorms folded, ``fuse``), or every model
#: exported to ONNX and run by ONNX Runtime's CPU provider.
RUNTIMES = ("torch", "onnxruntime")
#: Labels of the per-part breakdown, in pipeline order.
PARTS = ("F", "heatmap", "selection + ranking", "transform", "1-D subnet", "head", "other")


@dataclass
class BenchConfig:
    """What to time; see ``aknet bench --help`` for each field."""

    backbone: str = "tsm_resnet50"
    splits: tuple[str, ...] = ("none", "res2", "res3", "res4")
    alpha: float = 0.3
    batches: tuple[int, ...] = (1,)
    frames: int = 8
    size: int = 224
    device: str = "cpu"
    threads: int | None = None
    amp: bool = False
    runs: int = 7
    warmup: int = 2
    num_classes: int = 174
    options: dict[str, Any] = field(default_factory=dict)
    breakdown: bool = True
    memory: bool = True
    fuse: bool = False
    runtime: str = "torch"

    def validate(self) -> "BenchConfig":
        if not self.splits:
            raise ConfigError("--split needs at least one of none, res2, res3, res4")
        for s in self.splits:
            if s not in F.SPLITS:
                raise ConfigError(f"unknown split {s!r} in --split; choose from {', '.join(F.SPLITS)}")
        if not self.batches or any(b < 1 for b in self.batches):
            raise ConfigError(f"--batch needs positive integers, got {','.join(map(str, self.batches)) or 'nothing'}")
        if self.device not in DEVICES:
            raise ConfigError(f"--device must be cpu or cuda, got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available to torch on this machine; use --device cpu")
        if self.amp and self.device != "cuda" and self.runtime == "torch":
            raise ConfigError("--amp times autocast on CUDA; on the CPU aknet trains and evaluates in float32, "
                              "so bench does too: drop --amp or add --device cuda")
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if self.runtime == "onnxruntime":
            if self.device != "cpu" or self.amp:
                raise ConfigError("--runtime onnxruntime times ONNX Runtime's CPU provider in float32: "
                                  "drop --device cuda and --amp")
            from ..convert.export import require_onnxruntime

            require_onnxruntime()
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if self.runs < 1:
            raise ConfigError(f"--runs must be >= 1, got {self.runs}")
        if self.warmup < 0:
            raise ConfigError(f"--warmup must be >= 0, got {self.warmup}")
        # Ranges of alpha/frames/size/classes and the AK-Net options: the FLOP counter's checks.
        F.validate(split="res4", alpha=self.alpha, frames=self.frames, size=self.size, mode="inference",
                   num_classes=self.num_classes, options=self.options)
        from .._registry import get_backbone_factory

        get_backbone_factory(self.backbone)  # unknown name: one clear error before any work
        return self


# ------------------------------------------------------------------------------ timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, amp: bool):
    """Training's and evaluation's autocast policy (:mod:`aknet_cli.engine.precision`)."""
    return autocast(device, autocast_dtype(device, amp))


def time_interleaved(fns: Mapping[str, Callable[[], Any]], *, runs: int, warmup: int, device: torch.device,
                     amp: bool = False, on_round: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Seconds per call of each function, the functions interleaved and their order rotated.

    Round ``r`` calls every function once, starting at position ``r mod len(fns)``; the first
    ``warmup`` rounds are discarded. Returns ``{name: [seconds per kept round]}``.
    """
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode(), _autocast(device, amp):
        for r in range(warmup + runs):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                _sync(device)
                start = time.perf_counter()
                fns[name]()
                _sync(device)
                if r >= warmup:
                    times[name].append(time.perf_counter() - start)
            if on_round is not None:
                on_round()
    return times


def summarize(seconds: list[float]) -> dict[str, float]:
    """Median, quartiles and extremes in milliseconds."""
    ms = sorted(s * 1e3 for s in seconds)
    if len(ms) >= 2:
        q1, _, q3 = statistics.quantiles(ms, n=4, method="inclusive")
    else:
        q1 = q3 = ms[0]
    med = statistics.median(ms)
    return {"median": med, "p25": q1, "p75": q3, "min": ms[0], "max": ms[-1],
            "spread_pct": 100.0 * (q3 - q1) / med if med > 0 else 0.0}


def ratio_summary(numerator: list[float], denominator: list[float]) -> dict[str, float]:
    """The latency ratio of two models timed in the same interleaved rounds, with its spread.

    Round ``r`` of both lists ran back to back, so each round gives one ratio that machine noise
    (another process, a frequency change) mostly cancels from; the median of those ratios is the
    ratio, their quartiles its spread.

    Returns:
        ``{"median", "p25", "p75", "min", "max", "rounds"}``.
    """
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f"need the same number of rounds, got {len(numerator)} and {len(denominator)}")
    ratios = sorted(a / b for a, b in zip(numerator, denominator))
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else (ratios[0],) * 3
    return {"median": statistics.median(ratios), "p25": q1, "p75": q3, "min": ratios[0], "max": ratios[-1],
            "rounds": len(ratios)}


# ------------------------------------------------------------------------------ memory


def peak_memory_mb(fn: Callable[[], Any], device: torch.device, amp: bool = False) -> float | None:
    """Peak tensor memory (MB, 1e6 bytes) while ``fn`` runs once: weights and input included.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the PyTorch profiler's memory timeline
    (every tensor alive during the call, summed at each point in time). ``None`` where the
    profiler cannot tell.
    """
    with torch.inference_mode(), _autocast(device, amp):
        if device.type == "cuda":
            _sync(device)
            torch.cuda.reset_peak_memory_stats(device)
            fn()
            _sync(device)
            return torch.cuda.max_memory_allocated(device) / 1e6
        try:
            import warnings

            from torch.profiler import ProfilerActivity, profile
            from torch.profiler._memory_profiler import MemoryProfileTimeline

            with warnings.catch_warnings(), silenced_stderr():
                warnings.simplefilter("ignore")
                with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                             with_stack=True) as prof:
                    fn()
                _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline(torch.device("cpu"))
            return max(sum(s) for s in sizes) / 1e6 if sizes else None
        except Exception:  # a private API: report "unknown" rather than fail the benchmark
            return None


# --------------------------------------------------------------------------- breakdown
def _part_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(part label, module)`` for AK-Net's parts, as :data:`PARTS` names them."""
    out: list[tuple[str, nn.Module]] = [("F", model.features), ("heatmap", model.heatmap),
                                        ("selection + ranking", model.selector)]
    if getattr(model, "position", None) is not None:
        out.append(("transform", model.position))
    out += [("1-D subnet", stage) for stage in model.point_net.values()]
    out.append(("head", model.head))
    return out


@contextmanager
def _part_timers(model: nn.Module, device: torch.device) -> Iterator[dict[str, float]]:
    """Forward hooks adding each part's wall time (seconds) into the yielded dict."""
    acc: dict[str, float] = {}
    handles = []
    for label, module in _part_modules(model):
        state: dict[str, float] = {}

        def pre(_m, _inp, state=state):
            _sync(device)
            state["t"] = time.perf_counter()

        def post(_m, _inp, _out, state=state, label=label):
            _sync(device)
            acc[label] = acc.get(label, 0.0) + time.perf_counter() - state["t"]

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield acc
    finally:
        for h in handles:
            h.remove()


def part_breakdown(model: nn.Module, x: torch.Tensor, *, runs: int, warmup: int, device: torch.device,
                   amp: bool = False) -> dict[str, Any]:
    """Median milliseconds of each part of AK-Net over ``runs`` hooked forwards.

    ``other`` is the forward's time outside the hooked parts (the GAP context, reshapes).
    """
    per_run: list[dict[str, float]] = []
    totals: list[float] = []
    with _part_timers(model, device) as acc, torch.inference_mode(), _autocast(device, amp):
        for r in range(warmup + runs):
            acc.clear()
            _sync(device)
            start = time.perf_counter()
            model(x)
            _sync(device)
            total = time.perf_counter() - start
            if r >= warmup:
                per_run.append({**acc, "other": max(0.0, total - sum(acc.values()))})
                totals.append(total)
    labels = [p for p in PARTS if any(p in run for run in per_run)]
    parts = {p: statistics.median(run.get(p, 0.0) for run in per_run) * 1e3 for p in labels}
    return {"parts_ms": parts, "hooked_total_ms": statistics.median(totals) * 1e3}


# ------------------------------------------------------------------------------- the run
def _f_gflops(report: F.FlopReport, split: str) -> float:
    """GFLOPs of F (the stages up to ``split``, TDN's short-term module included)."""
    from ..models.backbone import STAGE_NAMES

    names = set(STAGE_NAMES[: STAGE_NAMES.index(split) + 1]) | {"short-term TDM"}
    return sum(p.flops for p in report.parts if p.name in names) / 1e9


class _Until(nn.Module):
    """The plain backbone's forward up to ``split``: F alone."""

    def __init__(self, backbone: nn.Module, split: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.split = split
        # what export's example_clip reads to build an input in the backbone's layout
        self.num_segments = backbone.num_segments
        self.frames_per_segment = backbone.frames_per_segment

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_until(x, self.split)


def _dtype_name(dtype: torch.dtype | None) -> str | None:
    return None if dtype is None else str(dtype).removeprefix("torch.")


def environment(cfg: BenchConfig) -> dict[str, Any]:
    dev = torch.device(cfg.device)
    env = {"device": cfg.device, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "python": platform.python_version(), "cpu": cpu_model(), "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
           "amp": _dtype_name(autocast_dtype(dev, cfg.amp)), "fused": cfg.fuse,
           "runtime": cfg.runtime}
    if dev.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(dev)
    if cfg.runtime == "onnxruntime":
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    return env


def describe_runtime(env: Mapping[str, Any]) -> str:
    """The execution path of a run, from its :func:`environment`, for reports and tables."""
    if env.get("runtime") == "onnxruntime":
        return f"ONNX Runtime {env['onnxruntime']} (CPU provider, BatchNorms folded)"
    return "eager PyTorch, BatchNorms folded" if env.get("fused") else "eager PyTorch"


def _onnxruntime_forwards(models: Mapping[str, nn.Module], cfg: BenchConfig, workdir: str,
                          say: Callable[[str, int], None]) -> dict[str, Any]:
    """Export every model once, with a dynamic batch, and open an ONNX Runtime session on each.

    Each export is checked against eager PyTorch on a random clip (logits to 1e-3, keypoints
    equal), so a timing is never taken of a graph that computes something else."""
    from pathlib import Path

    from ..convert.export import export_model, ort_session

    sessions = {}
    for name, model in models.items():
        say(f"exporting {name} to ONNX", 0)
        path = Path(workdir) / f"{name.replace(':', '_')}.onnx"
        report = export_model(model, path, format="onnx", batch="dynamic", size=cfg.size, fuse=True)
        if report.max_abs_logit_diff > 1e-3 or report.keypoints_equal is False:
            raise ConfigError(f"the ONNX export of {name} differs from eager PyTorch (largest logit difference "
                              f"{report.max_abs_logit_diff:.2e}, keypoints equal: {report.keypoints_equal}); "
                              "not timing it")
        sessions[name] = ort_session(path, cfg.threads)
    return sessions


def run_bench(cfg: BenchConfig, *, progress: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Time the backbone, F at each split and AK-Net at each split; see the module docstring.

    Args:
        cfg: what to time (validated here).
        progress: called as ``progress(description, advance)``; ``advance`` counts timed rounds.

    Returns:
        ``{"environment", "config", "convention", "rows"}``; one row per model and batch.
    """
    cfg.validate()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    dev = torch.device(cfg.device)
    say = progress or (lambda _d, _n: None)
    ak_splits = [s for s in cfg.splits if s != "none"]

    say("counting FLOPs", 0)
    counts = {s: F.count(cfg.backbone, split=s, alpha=cfg.alpha, frames=cfg.frames, size=cfg.size,
                         num_classes=cfg.num_classes, options=cfg.options) for s in ["none", *ak_splits]}
    f_gf = {s: _f_gflops(counts["none"], s) for s in ak_splits}

    say("building models", 0)
    models: dict[str, nn.Module] = {"none": F.build_counted_model(cfg.backbone, split="none", alpha=cfg.alpha, frames=cfg.frames,
                                                          num_classes=cfg.num_classes)}
    for s in ak_splits:
        models[s] = F.build_counted_model(cfg.backbone, split=s, alpha=cfg.alpha, frames=cfg.frames,
                                  num_classes=cfg.num_classes, options=cfg.options)
    models = {k: m.eval().to(dev) for k, m in models.items()}
    if cfg.fuse:  # the deployment path: every BatchNorm folded into its conv, backbone and AK-Net alike
        from ..models import fuse_for_inference

        models = {k: fuse_for_inference(m) for k, m in models.items()}
    f_only = {s: _Until(models["none"], s).eval() for s in ak_splits}
    with ExitStack() as stack:
        sessions = None
        if cfg.runtime == "onnxruntime":
            import tempfile

            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="aknet-bench-"))
            sessions = _onnxruntime_forwards({**models, **{f"F:{s}": m for s, m in f_only.items()}}, cfg,
                                             workdir, say)
        rows = [row for batch in cfg.batches
                for row in _time_batch(cfg, batch, models, f_only, sessions, counts, f_gf, dev, say)]
    _finish(rows)
    return _report(cfg, rows)


def _time_batch(cfg: BenchConfig, batch: int, models: Mapping[str, nn.Module], f_only: Mapping[str, nn.Module],
                sessions: Mapping[str, Any] | None, counts: Mapping[str, F.FlopReport], f_gf: Mapping[str, float],
                dev: torch.device, say: Callable[[str, int], None]) -> list[dict[str, Any]]:
    """The rows of one batch size: time every forward interleaved, then derive the ratios."""
    ak_splits = list(f_only)
    base_gf = counts["none"].gflops
    x = F.clip_input(models["none"], cfg.frames, cfg.size, batch=batch).to(dev)
    if sessions is None:
        fns: dict[str, Callable[[], Any]] = {"none": lambda: models["none"](x)}
        for s in ak_splits:
            fns[s] = (lambda m: lambda: m(x))(models[s])
            fns[f"F:{s}"] = (lambda m: lambda: m(x))(f_only[s])
    else:  # the same clips, through ONNX Runtime
        feed = {"clips": x.numpy()}
        fns = {name: (lambda sess: lambda: sess.run(None, feed))(sess) for name, sess in sessions.items()}
    say(f"batch {batch}: timing {len(fns)} forwards interleaved", 0)
    times = time_interleaved(fns, runs=cfg.runs, warmup=cfg.warmup, device=dev, amp=cfg.amp,
                             on_round=lambda: say(f"batch {batch}: timing", 1))
    stats = {k: summarize(v) for k, v in times.items()}
    base_ms = stats["none"]["median"]

    rows = []
    for s in ["none", *ak_splits]:
        st = stats[s]
        gf = counts[s].gflops
        row: dict[str, Any] = {
            "model": cfg.backbone if s == "none" else f"aknet/{cfg.backbone}",
            "split": s, "alpha": None if s == "none" else cfg.alpha, "batch": batch,
            "gflops": gf, "latency_ms_median": st["median"], "latency_ms_p25": st["p25"],
            "latency_ms_p75": st["p75"], "latency_ms_min": st["min"], "latency_ms_max": st["max"],
            "spread_pct": st["spread_pct"], "clips_per_s": batch / (st["median"] / 1e3),
            "peak_mem_mb": None, "latency_ratio": st["median"] / base_ms, "flops_ratio": gf / base_gf,
            "f_latency_ms": None, "floor_ratio": None, "f_flops_ratio": None,
            "ms_per_gflop_after_split": None, "backbone_ms_per_gflop_after_split": None,
            "after_split_factor": None, "parts_ms": None, "hooked_total_ms": None,
        }
        if s != "none":
            f_ms = stats[f"F:{s}"]["median"]
            ak_rate = (st["median"] - f_ms) / (batch * (gf - f_gf[s])) if gf > f_gf[s] else math.nan
            bb_rate = (base_ms - f_ms) / (batch * (base_gf - f_gf[s]))
            row.update({
                "f_latency_ms": f_ms, "floor_ratio": f_ms / base_ms, "f_flops_ratio": f_gf[s] / base_gf,
                "ms_per_gflop_after_split": ak_rate, "backbone_ms_per_gflop_after_split": bb_rate,
                "after_split_factor": ak_rate / bb_rate if bb_rate > 0 else math.nan,
            })
        if cfg.memory and sessions is None:  # ONNX Runtime's allocations are not torch's to see
            say(f"batch {batch}: peak memory of {s}", 0)
            row["peak_mem_mb"] = peak_memory_mb(fns[s], dev, cfg.amp)
        if cfg.breakdown and s != "none" and sessions is None:  # the hooks need PyTorch modules
            say(f"batch {batch}: per-part breakdown at {s}", 0)
            row.update(part_breakdown(models[s], x, runs=cfg.runs, warmup=min(cfg.warmup, 1), device=dev,
                                      amp=cfg.amp))
        rows.append(row)
    return rows


def _finish(rows: list[dict[str, Any]]) -> None:
    for row in rows:  # JSON has no NaN
        for k, v in row.items():
            if isinstance(v, float) and not math.isfinite(v):
                row[k] = None


def _report(cfg: BenchConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    env = environment(cfg)
    return {
        "environment": env,
        "config": {"backbone": cfg.backbone, "splits": list(cfg.splits), "alpha": cfg.alpha,
                   "batches": list(cfg.batches), "frames": cfg.frames, "size": cfg.size, "runs": cfg.runs,
                   "warmup": cfg.warmup, "num_classes": cfg.num_classes, "options": dict(cfg.options),
                   "runtime": cfg.runtime, "fuse": cfg.fuse},
        "convention": (f"{describe_runtime(env)}; eval mode, torch.inference_mode, models interleaved round by round (order rotated), "
                       f"median of {cfg.runs} after {cfg.warmup} warm-up rounds; gflops per clip "
                       f"({F.CONVENTION.split(';')[0]}); ms per GFLOP after the split per clip of the batch"),
        "rows": rows,
    }


def rounds(cfg: BenchConfig) -> int:
    """How many timed rounds :func:`run_bench` reports through ``progress``."""
    return len(cfg.batches) * (cfg.warmup + cfg.runs)
