"""What a CUDA run would wait for, seen on the CPU: the operators that read a tensor's value back
to Python (``.item()``, ``int(t)``, ``bool(t)``: ``_local_scalar_dense``), that size their output by
the data (``nonzero``, ``masked_select``), or that make a tensor from Python values
(``torch.tensor``, ``new_tensor``: ``lift_fresh``, a copy from pageable host memory on CUDA)."""

from __future__ import annotations

import traceback

from torch.utils._python_dispatch import TorchDispatchMode

HOST_SYNC_OPS = frozenset({
    "aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default",
    "aten.lift_fresh.default", "aten.lift_fresh_copy.default",
})


class HostSyncSpy(TorchDispatchMode):
    """Records every :data:`HOST_SYNC_OPS` call made while active, with the line that made it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func) in HOST_SYNC_OPS:
            where = next((f for f in reversed(traceback.extract_stack()[:-1]) if "aknet_cli" in f.filename), None)
            self.calls.append((str(func), f"{where.filename}:{where.lineno} {where.line}" if where else "?"))
        return func(*args, **(kwargs or {}))
