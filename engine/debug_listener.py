"""IDebugListener: read every tensor an engine produces at a layer boundary, as the engine is built.

TensorRT 10's `context.set_debug_listener` calls back per debug tensor; here every tensor that crosses a layer
boundary of the built engine can be watched without rebuilding or marking anything as an output, so the fusions,
precisions and tactics under inspection are the ones the plain engine runs. The callback runs right after the
layer that wrote the tensor, before a later layer may reuse its memory: the array is only valid during the call
(copy it to keep it). On the GPU it is a device array on the execution's stream.
"""
from __future__ import annotations

from typing import Any


class IDebugListener:
    """Subclass and pass to `ExecutionContext.set_debug_listener`."""

    def process_debug_tensor(self, name: str, array: Any, layer: str) -> None:
        """`name`: the engine tensor; `array`: its value (host NumPy or device CuPy, valid during this call only);
        `layer`: the engine layer that produced it (a fused layer's name for tensors it absorbed nothing of)."""
        raise NotImplementedError
