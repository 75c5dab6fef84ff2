"""Test helper: the ONNX backend node cases shipped in the onnx wheel, run through the engine.

Collecting the cases imports every case generator (about 6 s), so it happens once per test session.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

from engine.conformance.harness import run_onnx


@functools.cache
def _all_cases() -> tuple:
    from onnx.backend.test.case import node

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return tuple(node.collect_testcases())


def cases_for(op_types: Iterable[str]) -> list:
    """Cases whose nodes all have one of `op_types` (the `_expanded` variants test other ops and are left out)."""
    wanted = set(op_types)
    return [case for case in _all_cases() if {n.op_type for n in case.model.graph.node} <= wanted]


def freeze_shape_inputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Turn 1-D INT64 graph inputs (Reduce axes, TopK k) into initializers holding the fed values, removing them
    from `feeds`. The builder does not take values of shape-tensor network inputs yet (TensorRT's
    set_shape_input), and these cases feed their shape operands as graph inputs."""
    frozen = [name for name, value in feeds.items() if value.dtype == np.int64 and value.ndim == 1]
    if not frozen:
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    model.graph.initializer.extend(numpy_helper.from_array(feeds.pop(name), name) for name in frozen)
    kept = [i for i in model.graph.input if i.name not in frozen]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    return model


def run_case(case, freeze: bool = True) -> None:
    """Run every data set of `case` through the engine and assert ONNX's expected outputs."""
    names = [i.name for i in case.model.graph.input]
    for inputs, expected in case.data_sets:
        feeds = dict(zip(names, inputs))
        model = freeze_shape_inputs(case.model, feeds) if freeze else case.model
        outputs = run_onnx(model, feeds)
        for info, want in zip(case.model.graph.output, expected):
            got = np.asarray(outputs[info.name])
            assert got.dtype == want.dtype and got.shape == want.shape, (info.name, got.dtype, got.shape,
                                                                         want.dtype, want.shape)
            if want.dtype.kind == "f":
                np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol)
            else:
                np.testing.assert_array_equal(got, want)
