"""Carving a tactic's workspace into named scratch buffers.

A tactic describes its scratch needs once as a list of (shape, dtype) specs; `workspace_bytes` sums them and
`run` carves them out of the runtime's workspace, so the size a tactic claims is by construction what it uses.
When the workspace is absent or smaller (a larger shape than the one built for), the buffers are allocated.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

ALIGNMENT = 64

BufferSpec = tuple[Sequence[int], Any]


@functools.lru_cache(maxsize=4096)
def _layout(specs: tuple) -> tuple[int, tuple]:
    """(total aligned bytes, per buffer (offset, nbytes, shape, dtype)) of hashable specs."""
    placed, offset = [], 0
    for shape, dtype in specs:
        nbytes = math.prod(shape) * dtype.itemsize
        placed.append((offset, nbytes, shape, dtype))
        offset += -(-nbytes // ALIGNMENT) * ALIGNMENT
    return offset, tuple(placed)


def _key(specs: Sequence[BufferSpec]) -> tuple:
    return tuple((tuple(int(d) for d in shape), np.dtype(dtype)) for shape, dtype in specs)


def total_bytes(specs: Sequence[BufferSpec]) -> int:
    return _layout(_key(specs))[0]


def carve(workspace: Any, specs: Sequence[BufferSpec], xp: Any) -> list[Any]:
    """One array per spec, views into `workspace` (a 1-D uint8 array) when it is large enough."""
    total, placed = _layout(_key(specs))
    if workspace is None or workspace.nbytes < total:
        return [xp.empty(shape, dtype=dtype) for _, _, shape, dtype in placed]
    flat = workspace.reshape(-1)
    return [flat[offset:offset + nbytes].view(dtype).reshape(shape) for offset, nbytes, shape, dtype in placed]
