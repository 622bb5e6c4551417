"""Checkpoint files: written atomically, read with ``weights_only=True``, their weights verified.

A checkpoint is a plain dict (so ``torch.load(..., weights_only=True)`` can read it)::

    {"format": "aknet-checkpoint/3", "kind": "backbone" | "aknet",
     "config": {"backbone": ..., "num_classes": ..., "num_segments": ..., "aknet": {...}},
     "state_dict": {...}, "meta": {...}, "digest": {"sha256": {...}, "metadata_sha256": {...}}
     [, "train_state": {...}]}

``train_state`` (in a training run's ``last.pt``) holds what an exact resume needs: the
optimizer, scheduler and AMP scaler states, epoch and step, and every RNG state.

``digest`` holds a SHA-256 of the tensor payload of ``state_dict`` (and of ``train_state``):
every tensor's name, dtype, shape and bytes, in name order. :func:`read_checkpoint_file` checks it,
so a file whose weights changed on disk (a flipped bit, a bad copy) is refused in one line
instead of evaluating to wrong numbers. Since format 3, ``digest`` also holds
``metadata_sha256``: a SHA-256 of everything else in each top-level part (the kind, the model
description in ``config``, ``meta``, the plain values of ``train_state``; :func:`metadata_sha256`),
so a file whose description was edited after it was written is named as such, with the part
that changed, instead of being rebuilt into another model. Format 2 files have the tensors'
digest only: they load with their tensors verified and their metadata checked against the
schema alone (:mod:`~aknet_cli.checkpoints.schema`, by the reader that builds models).
Format 1 (aknet 0.1) had no digest: such files load unverified and silently,
like other toolkits' files, which never carry one; ``"verified"`` and ``"metadata_verified"``
in what :func:`read_checkpoint_file` returns say which was the case.

Format 2 also marked a model change: our TDN's long-term module pools as TDN's code does since
then (see ``docs/backbones.md``), so a format-1 TDN checkpoint was trained with the old pooling.

Plain state dicts (ours or another toolkit's, possibly under ``state_dict`` / ``model``) are
accepted too; ``module.`` prefixes left by DataParallel/DDP are removed on load. Files of other
toolkits may carry metadata beside the weights (mmengine's ``meta``, ``message_hub``, optimizer
state): the plain data types those hold are allowed (:data:`METADATA_GLOBALS`), nothing that
could run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from .._atomic import atomic_output
from ..exceptions import CheckpointError

FORMAT = "aknet-checkpoint/3"
#: Formats :func:`read_checkpoint_file` reads: 1 has no digest (and TDN pooled differently then),
#: 2 a digest of its tensors only, 3 of its tensors and its metadata.
READABLE_FORMATS = ("aknet-checkpoint/1", "aknet-checkpoint/2", FORMAT)
#: The parts of a checkpoint whose tensors are digested (each its own SHA-256).
TENSOR_PARTS = ("state_dict", "train_state")


class InertRecord:
    """Stand-in for a metadata object of another toolkit (mmengine's ``HistoryBuffer``, the
    loss and learning-rate history in an mmengine checkpoint's ``message_hub``): unpickling it
    stores the pickled state in :attr:`state` and runs nothing else."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _numpy_globals() -> list[tuple[Any, str]]:
    """NumPy's array, scalar and dtype rebuilders under the names NumPy 1.x and 2.x pickle them."""
    core = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    found = []
    for package in ("numpy.core", "numpy._core"):
        found += [(core._reconstruct, f"{package}.multiarray._reconstruct"),
                  (core.scalar, f"{package}.multiarray.scalar")]
    # An unpickled dtype is an instance of its own class (numpy.dtypes.Float64DType, ...), which
    # receives the dtype's pickled state: those classes must be allowed too.
    dtype_classes = {type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGSUVOMm"}
    return found + [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")] + sorted(dtype_classes, key=str)


#: What ``torch.load(weights_only=True)`` may rebuild beside tensors and plain containers:
#: NumPy arrays, scalars and dtypes (mmengine's ``meta`` and ``message_hub`` hold them) and
#: mmengine's ``HistoryBuffer`` as an :class:`InertRecord`. None of them runs code of the file.
METADATA_GLOBALS = _numpy_globals() + [(InertRecord, "mmengine.logging.history_buffer.HistoryBuffer")]
_UNSUPPORTED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _tensors(obj: Any, path: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor inside nested dicts/lists, with a path naming it, in a fixed order."""
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, Mapping):
        for key in sorted(obj, key=str):
            yield from _tensors(obj[key], f"{path}/{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _tensors(value, f"{path}/{i}")


def payload_sha256(obj: Any) -> str:
    """SHA-256 over every tensor in ``obj``: its path, dtype, shape and raw bytes.

    Hashes the tensors' memory in place (no copy for contiguous CPU tensors); hashlib releases
    the GIL and runs at memory speed, about the cost of writing the file once more.
    """
    digest = hashlib.sha256()
    for name, tensor in _tensors(obj):
        tensor = tensor.detach()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        flat = tensor.cpu().contiguous().reshape(-1)
        if flat.numel():
            digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()


def _canonical(obj: Any) -> str:
    """A text that changes whenever a non-tensor value inside ``obj`` changes, the same for the
    same values whatever their dict order; tensors stand in as ``T`` (their own digest covers
    them), NumPy arrays by their bytes (a NumPy RNG state holds one)."""
    if isinstance(obj, torch.Tensor):
        return "T"
    if isinstance(obj, Mapping):
        items = sorted((_canonical(k), _canonical(v)) for k, v in obj.items())
        return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(_canonical(v) for v in obj) + "]"
    if isinstance(obj, (set, frozenset)):
        return "<" + ",".join(sorted(_canonical(v) for v in obj)) + ">"
    if isinstance(obj, np.ndarray):
        return f"ndarray({obj.dtype},{obj.shape},{hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()})"
    if isinstance(obj, str):
        return json.dumps(obj)  # quoted and escaped: "1" and 1 differ, surrogates are kept
    return f"{type(obj).__name__}:{obj!r}"  # None, bool, int, float (repr round-trips), NumPy scalars


def metadata_sha256(obj: dict[str, Any]) -> dict[str, str]:
    """SHA-256 of everything in a checkpoint dict but its tensors' bytes, one per top-level part
    (``kind``, ``config``, ``meta``, ...), so that an edit is named by the part it changed."""
    return {str(key): hashlib.sha256(_canonical(value).encode("utf-8", "surrogatepass")).hexdigest()
            for key, value in obj.items() if key != "digest"}


def _digests(obj: dict[str, Any]) -> dict[str, Any]:
    tensors = {part: payload_sha256(obj[part]) for part in TENSOR_PARTS if obj.get(part) is not None}
    return {"sha256": tensors, "metadata_sha256": metadata_sha256(obj)}


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename over it."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def save_checkpoint(
    path: str | os.PathLike,
    *,
    kind: str,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    meta: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint atomically, with the SHA-256 of its tensors and of its metadata
    (module docstring)."""
    obj = {"format": FORMAT, "kind": kind, "config": config, "state_dict": state_dict, "meta": meta or {}}
    if train_state is not None:
        obj["train_state"] = train_state
    obj["digest"] = _digests(obj)
    atomic_torch_save(obj, path)


def strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the ``module.`` prefix DataParallel / DDP put in front of every key."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _torch_load(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(METADATA_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        needed = _UNSUPPORTED_GLOBAL.search(str(exc))
        if needed:
            raise CheckpointError(
                f"cannot read checkpoint {path}: it holds objects other than tensors and plain data "
                f"({needed.group(1)}), which aknet does not unpickle (that could run code); save its weights alone first, with the toolkit "
                f"that wrote it or, for a file you trust, python -c \"import torch; c = torch.load('{path.name}', "
                f"weights_only=False); torch.save({{'state_dict': c['state_dict'], 'meta': c.get('meta', {{}})}}, "
                f"'stripped.pth')\""
            ) from None
        raise CheckpointError(
            f"cannot read checkpoint {path}: not a PyTorch file, truncated, or holding objects "
            f"other than tensors ({type(exc).__name__})"
        ) from None


def _verify(obj: dict[str, Any], path: Path) -> tuple[bool, bool]:
    """Check the stored digests: ``(tensors verified, metadata verified)``, both ``False`` when
    the file has none (format 1); the metadata's only from format 3 on."""
    digest = obj.get("digest") or {}
    stored = digest.get("sha256") if isinstance(digest, dict) else None
    if not stored:
        return False, False
    if not isinstance(stored, dict):
        raise CheckpointError(f"checkpoint {path} is corrupt: its digest is not a table of SHA-256 sums; copy it again "
                              f"from the original")
    for part, expected in stored.items():
        actual = payload_sha256(obj.get(part))
        if actual != expected:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: the SHA-256 of its {part} tensors is {actual[:12]}…, the file "
                f"recorded {expected[:12]}… when it was written; copy it again from the original"
            )
    recorded = digest.get("metadata_sha256")
    if recorded is None:
        return True, False
    current = metadata_sha256(obj)
    changed = sorted(part for part in set(current) | set(recorded or {}) if current.get(part) != recorded.get(part)) \
        if isinstance(recorded, dict) else ["digest"]
    if changed:
        raise CheckpointError(
            f"checkpoint {path} was edited after it was written: its {' and '.join(changed)} no longer "
            f"{'matches' if len(changed) == 1 else 'match'} the "
            f"SHA-256 recorded when it was saved, though its tensors do; use the file as aknet wrote it (copy it "
            f"again from the original)")
    return True, True


def _check_container(obj: dict[str, Any], path: Path) -> None:
    """The parts of an aknet checkpoint have the types every reader relies on."""
    if not isinstance(obj.get("kind"), str):
        raise CheckpointError(f"{path}: its kind holds {obj.get('kind')!r}; it should hold 'backbone' or 'aknet'")
    for part in ("config", "meta", "train_state"):
        if obj.get(part) is not None and not isinstance(obj[part], dict):
            raise CheckpointError(f"{path}: its {part} holds a {type(obj[part]).__name__}; it should hold a table "
                                  f"(a dict)")
    state = obj.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        shown = type(state).__name__ if not isinstance(state, dict) else "a dict with other values than tensors"
        raise CheckpointError(f"{path}: its state_dict holds {shown}; it should hold tensors by parameter name")


def _plain_info(obj: dict[str, Any]) -> dict[str, Any]:
    """A foreign file's metadata: its ``meta`` dict (mmengine) and top-level scalars (TSM's ``arch``)."""
    info = {k: v for k, v in obj.items() if isinstance(v, (str, int, float, bool))}
    if isinstance(obj.get("meta"), dict):
        info.update(obj["meta"])
    return info


def read_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint or a plain state dict, verifying its digest when it has one.

    Returns:
        ``{"kind": str | None, "format": str | None, "config": dict, "state_dict": dict,
        "meta": dict, "train_state": dict | None, "verified": bool, "metadata_verified": bool}``;
        ``kind`` and ``format`` are ``None`` for a plain state dict, whose ``meta`` holds the
        file's own metadata (mmengine's ``meta``, TSM's ``arch``/``epoch``).

    Raises:
        CheckpointError: the file is missing, unreadable, holds no state dict, needs an object
            outside :data:`METADATA_GLOBALS`, its tensors or (format 3) its metadata do not match
            its digest, or its parts are not of the types an aknet checkpoint holds.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    obj = _torch_load(path)
    if isinstance(obj, dict) and obj.get("format") in READABLE_FORMATS:
        verified, metadata_verified = _verify(obj, path)
        _check_container(obj, path)
        return {
            "kind": obj["kind"],
            "format": obj["format"],
            "config": dict(obj.get("config") or {}),
            "state_dict": strip_module_prefix(obj["state_dict"]),
            "meta": dict(obj.get("meta") or {}),
            "train_state": obj.get("train_state"),
            "verified": verified,
            "metadata_verified": metadata_verified,
        }
    info = _plain_info(obj) if isinstance(obj, dict) else {}
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds neither an aknet checkpoint nor a state dict")
    return {"kind": None, "format": None, "config": {}, "state_dict": strip_module_prefix(obj), "meta": info,
            "train_state": None, "verified": False, "metadata_verified": False}


def load_state_strict(
    module: torch.nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    *,
    allow_missing: tuple[str, ...] = (),
    name_in_file: Callable[[str], str] | None = None,
) -> None:
    """``load_state_dict(strict=True)`` with a one-line error that names the file.

    Args:
        allow_missing: key prefixes the file may lack (e.g. ``("fc.",)`` for ImageNet
            weights loaded under a new classifier).
        name_in_file: our key → the same key in the file's own naming (another toolkit's), so
            the error names keys the way the user sees them in the file.
    """
    shown = (lambda k: f"{name_in_file(k)} (ours: {k})") if name_in_file else (lambda k: k)
    own = module.state_dict()
    wrong = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"{source} does not match the model: {len(wrong)} tensors differ in shape (e.g. {shown(k)}: "
            f"{tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model); "
            f"is it a checkpoint of this backbone, class count and frame count?"
        )
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(allow_missing)] if allow_missing else missing
    if missing or unexpected:
        sample = ", ".join(shown(k) for k in (list(missing) + list(unexpected))[:3])
        raise CheckpointError(
            f"{source} does not match the model: {len(missing)} missing and {len(unexpected)} "
            f"unexpected keys (e.g. {sample}); is it a checkpoint of this backbone?"
        )
