"""Deployment: a model (backbone or AK-Net) → ONNX or a ``torch.export`` program, and ONNX
Runtime timings.

The exported graph is the eval-mode forward with its BatchNorms folded
(:func:`~aknet_cli.models.fuse_for_inference`): input ``clips`` in the backbone's layout
``(B, T, 3, H, W)`` (TDN: ``(B, T, 5, 3, H, W)``), outputs ``logits (B, K)`` and, for AK-Net,
``keypoints (B, N, 3)`` int64 ``(t, y, x)`` in ranked order. Top-k, the ranking sort and the
gather are exported as such (ONNX ``TopK`` / ``GatherElements``), so the keypoints are the
ones eager PyTorch picks, ties included: the ranking's stable sort becomes an ONNX ``TopK``
over the whole axis, which the ONNX specification defines as stable (lower index first).

Dynamic batch. ``batch="dynamic"`` exports with a symbolic batch dimension (every built-in
model and AK-Net keep the batch symbolic: no ``int()`` of it in a forward). A plugin whose
code converts the batch size to a Python ``int`` freezes it; for ``torch.export`` that case
falls back to ``torch.ops.higher_order.map`` over the clips (still any batch size, run clip by
clip); ONNX has no such loop in the exporter, so there it is an error that says to export
with a fixed batch.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._atomic import atomic_output
from ..exceptions import ConfigError
from ..models.fuse import fuse_for_inference

FORMATS = ("onnx", "torch-export")
MAX_BATCH = 4096  # upper bound of the symbolic batch dimension


class Exportable(nn.Module):
    """The eval forward as a plain function of one tensor: ``clips → logits[, keypoints]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.returns_keypoints = hasattr(model, "selector")

    @property
    def output_names(self) -> list[str]:
        return ["logits", "keypoints"] if self.returns_keypoints else ["logits"]

    def forward(self, clips: torch.Tensor):
        if self.returns_keypoints:
            return self.model(clips, return_keypoints=True)
        return self.model(clips)


class ClipByClip(nn.Module):
    """``Exportable`` mapped over the batch with ``higher_order.map``: the traced body sees one
    clip, so a model that freezes its batch size still exports with a dynamic batch."""

    def __init__(self, inner: Exportable) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, clips: torch.Tensor):
        from torch._higher_order_ops.map import map as map_over_batch

        def one(clip: torch.Tensor):
            out = self.inner(clip.unsqueeze(0))
            return tuple(o[0] for o in out) if isinstance(out, tuple) else out[0]

        return map_over_batch(one, clips)


def example_clip(model: nn.Module, *, batch: int = 1, size: int = 224, seed: int = 0) -> torch.Tensor:
    """A random clip batch in ``model``'s input layout (AK-Net takes its backbone's)."""
    backbone = getattr(model, "backbone", model)
    fps, t = backbone.frames_per_segment, backbone.num_segments
    shape = (batch, t, 3, size, size) if fps == 1 else (batch, t, fps, 3, size, size)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _is_batch_specialised(exc: Exception) -> bool:
    text = str(exc)
    return "specialized it to be a constant" in text or "Constraints violated" in text


def to_exported_program(model: nn.Module, clip: torch.Tensor, *, dynamic_batch: bool) -> tuple[Any, str]:
    """``torch.export`` the eval forward.

    Returns:
        ``(ExportedProgram, mode)``, mode ``"static"``, ``"batched"`` (symbolic batch) or
        ``"clip-by-clip"`` (symbolic batch through ``higher_order.map``).
    """
    wrapper = Exportable(model).eval()
    if not dynamic_batch:
        return torch.export.export(wrapper, (clip,)), "static"
    # min=1: torch.export would otherwise assume B ≥ 2 and specialise a batch of 1 away.
    shapes = {"clips": {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}}
    try:
        return torch.export.export(wrapper, (clip,), dynamic_shapes=shapes), "batched"
    except Exception as exc:  # torch raises its own UserError; anything else is a bug
        if not _is_batch_specialised(exc):
            raise
    return torch.export.export(ClipByClip(wrapper).eval(), (clip,), dynamic_shapes=shapes), "clip-by-clip"


def _onnx_sort_stable(self, stable=True, dim: int = -1, descending: bool = False):
    """``aten.sort.stable`` → ONNX ``TopK`` over the whole axis (stable by the ONNX spec)."""
    from onnxscript import opset18 as op

    n = op.Reshape(op.Gather(op.Shape(self), dim, axis=0), op.Constant(value_ints=[1]))
    return op.TopK(self, n, axis=dim, largest=descending, sorted=True)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs onnx and onnxscript: pip install 'aknet[export]'") from None


@dataclass
class ExportReport:
    """What :func:`export_model` wrote and how the exported model compares with eager."""

    output: str
    format: str
    batch: str
    mode: str
    outputs: list[str]
    input_shape: list[int]
    max_abs_logit_diff: float
    keypoints_equal: bool | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _compare(expected, got) -> tuple[float, bool | None]:
    expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    got = got if isinstance(got, (tuple, list)) else (got,)
    diff = float((torch.as_tensor(got[0]) - expected[0]).abs().max())
    same = None if len(expected) < 2 else bool(torch.equal(torch.as_tensor(got[1]), expected[1]))
    return diff, same


def export_model(
    model: nn.Module,
    out: str | Path,
    *,
    format: str = "onnx",
    batch: int | str = 1,
    size: int = 224,
    fuse: bool = True,
    overwrite: bool = False,
) -> ExportReport:
    """Export ``model`` (eval mode) and check the result against eager PyTorch.

    Args:
        model: a backbone or an AK-Net.
        out: the file to write (atomically): ``.onnx`` or a ``torch.export`` ``.pt2`` archive.
        format: ``"onnx"`` or ``"torch-export"``.
        batch: a fixed batch size, or ``"dynamic"`` for a symbolic batch dimension.
        size: the input's height and width (fixed in the exported graph).
        fuse: fold BatchNorms first (:func:`fuse_for_inference`; same outputs to float error).
        overwrite: replace ``out`` if it exists.

    Returns:
        An :class:`ExportReport`, including the largest logit difference and whether the
        keypoints match, on a random clip at the export's batch size (batch 2 when dynamic).
    """
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    dynamic = batch == "dynamic"
    if not dynamic:
        try:
            batch = int(batch)
        except (TypeError, ValueError):
            raise ConfigError(f"--batch must be a positive integer or 'dynamic', got {batch!r}") from None
        if batch < 1:
            raise ConfigError(f"--batch must be a positive integer or 'dynamic', got {batch}")
    if size < 32:
        raise ConfigError(f"--size must be at least 32 pixels, got {size}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; pass --force to replace it")
    if format == "onnx":
        _require_onnx()

    model = fuse_for_inference(model) if fuse else model.eval()
    # a batch of 2 to trace: with 1, export could mistake the batch for a constant
    clip = example_clip(model, batch=2 if dynamic else batch, size=size)
    wrapper = Exportable(model)
    with torch.no_grad():
        expected = wrapper(clip)
        program, mode = to_exported_program(model, clip, dynamic_batch=dynamic)
    if format == "torch-export":
        with atomic_output(out, suffix=".pt2") as tmp:
            torch.export.save(program, tmp)
        with torch.no_grad():
            got = program.module()(clip)
    else:
        if mode == "clip-by-clip":
            raise ConfigError(
                "this model's code fixes the batch size, and ONNX export has no per-clip loop: "
                "export with a fixed --batch N, or use --format torch-export for a dynamic batch"
            )
        shapes = {"clips": {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}} if dynamic else None
        onnx_program = torch.onnx.export(
            program, (clip,), dynamo=True, dynamic_shapes=shapes, input_names=["clips"],
            output_names=wrapper.output_names,
            custom_translation_table={torch.ops.aten.sort.stable: _onnx_sort_stable}, verbose=False,
        )
        with atomic_output(out, suffix=".onnx") as tmp:
            # One self-contained file: external data would be named after the temporary file.
            onnx_program.save(tmp, external_data=False)
        got = onnx_outputs(out, clip)
    diff, same = _compare(expected, got)
    return ExportReport(
        output=str(out), format=format, batch="dynamic" if dynamic else str(batch), mode=mode,
        outputs=wrapper.output_names, input_shape=list(clip.shape), max_abs_logit_diff=diff,
        keypoints_equal=same,
    )


def require_onnxruntime() -> None:
    """ONNX export and ONNX Runtime are importable, or one line saying how to install them."""
    _require_onnx()
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX Runtime is not installed: pip install 'aknet[export]'") from None


def ort_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session for an exported ``.onnx`` (``threads``: intra-op threads)."""
    require_onnxruntime()
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_outputs(path: str | Path, clip: torch.Tensor) -> list[torch.Tensor]:
    """Run an exported ``.onnx`` on ``clip`` with ONNX Runtime (CPU): ``[logits, keypoints?]``."""
    session = ort_session(path)
    outputs = session.run(None, {session.get_inputs()[0].name: clip.numpy()})
    return [torch.from_numpy(o) for o in outputs]


def onnxruntime_latency(
    path: str | Path | Any, clip: torch.Tensor, *, runs: int = 7, warmup: int = 1, threads: int | None = None,
) -> list[float]:
    """Seconds per forward of an exported ``.onnx`` under ONNX Runtime (CPU provider).

    Args:
        path: the ``.onnx`` file (from :func:`export_model`), or a session from
            :func:`ort_session` (to time several models interleaved without reloading them).
        clip: an input batch in the model's layout (its batch must fit the export's).
        runs: timed runs; warmup: untimed runs first (allocator, kernel selection).
        threads: intra-op threads (``None``: ONNX Runtime's default, one per core).

    Returns:
        ``runs`` wall-clock times in seconds; take the median.
    """
    session = path if hasattr(path, "run") else ort_session(path, threads)
    feed = {session.get_inputs()[0].name: clip.numpy()}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return times


def median_ms(times: list[float]) -> float:
    """Median of seconds, in milliseconds."""
    return statistics.median(times) * 1000.0
