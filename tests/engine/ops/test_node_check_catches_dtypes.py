"""The float64-reference check must fail when the engine returns another dtype than the model's (it used to cast
the reference to the engine's own output dtype, so that check could not fail)."""
from __future__ import annotations

import numpy as np
import onnx_node_check
import pytest
from onnx_node_check import check_against_float64_reference


def test_a_float32_result_for_a_float16_relu_fails(monkeypatch) -> None:
    x = np.linspace(-1, 1, 6, dtype=np.float16).reshape(2, 3)
    check_against_float64_reference("Relu", ["x"], {"x": x})  # the engine itself is right
    engine = onnx_node_check.run_engine
    monkeypatch.setattr(onnx_node_check, "run_engine",
                        lambda model, feeds: [a.astype(np.float32) for a in engine(model, feeds)])
    with pytest.raises(AssertionError, match="float32"):
        check_against_float64_reference("Relu", ["x"], {"x": x})
