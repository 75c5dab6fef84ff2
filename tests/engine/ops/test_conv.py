"""CONVOLUTION layers and ONNX Conv: backend cases, onnxruntime on grouped/strided/dilated/padded 1-D..3-D cases."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_float64_reference, check_against_ort, node_model

from engine.conformance.harness import parse_onnx
from engine.errors import ParseError

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("case", cases_for(["Conv"]), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


CASES = [  # (x shape, W shape, attrs)
    ((2, 4, 9, 8), (6, 2, 3, 3), {"group": 2, "strides": [2, 1], "dilations": [1, 2], "pads": [1, 0, 2, 1]}),
    ((1, 6, 7, 9), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),
    ((1, 6, 7, 9), (12, 1, 3, 3), {"group": 6, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((2, 8, 5, 6), (4, 8, 1, 1), {}),
    ((1, 3, 11), (5, 3, 3), {"dilations": [2], "pads": [2, 0]}),
    ((1, 4, 5, 6, 4), (4, 2, 2, 3, 2), {"group": 2, "strides": [1, 2, 1], "pads": [1, 0, 1, 0, 1, 1]}),
    ((1, 4, 8, 7), (6, 4, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 4, 8, 7), (6, 4, 4, 4), {"auto_pad": "SAME_LOWER", "strides": [2, 3]}),
    ((1, 4, 8, 7), (6, 4, 3, 2), {"auto_pad": "VALID"}),
]


@pytest.mark.parametrize("constant_weights", [True, False])
@pytest.mark.parametrize("x_shape, w_shape, attrs", CASES)
def test_matches_onnxruntime(x_shape, w_shape, attrs, constant_weights):
    values = {"x": RNG.standard_normal(x_shape).astype(np.float32),
              "w": RNG.standard_normal(w_shape).astype(np.float32),
              "b": RNG.standard_normal(w_shape[0]).astype(np.float32)}
    check_against_ort("Conv", ["x", "w", "b"], values, attrs=attrs, rtol=1e-4, atol=1e-4,
                      constants=["w", "b"] if constant_weights else [])


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_float_types(dtype):
    values = {"x": RNG.standard_normal((1, 4, 6, 6)).astype(dtype),
              "w": RNG.standard_normal((4, 2, 3, 3)).astype(dtype)}
    check_against_float64_reference("Conv", ["x", "w"], values, attrs={"group": 2, "pads": [1, 1, 1, 1]},
                                    constants=["w"], rtol=1e-2 if dtype == np.float16 else 1e-9, atol=1e-2)


def test_integer_input_is_unsupported():
    values = {"x": np.ones((1, 1, 3, 3), np.int32), "w": np.ones((1, 1, 1, 1), np.int32)}
    with pytest.raises(ParseError, match="Conv.*float"):
        parse_onnx(node_model("Conv", ["x", "w"], values, constants=["w"]))
