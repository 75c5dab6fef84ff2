"""DECONVOLUTION layers and ONNX ConvTranspose: backend cases and onnxruntime on padded/strided/grouped cases."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_ort

RNG = np.random.default_rng(12)


@pytest.mark.parametrize("case", cases_for(["ConvTranspose"]), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


CASES = [  # (x shape, W shape, attrs)
    ((2, 4, 5, 4), (4, 3, 3, 3), {"group": 2, "strides": [2, 3], "pads": [1, 0, 0, 2], "output_padding": [1, 2]}),
    ((1, 2, 5, 5), (2, 3, 3, 3), {"strides": [2, 2], "dilations": [2, 1], "pads": [1, 1, 1, 1]}),
    ((1, 2, 4, 5), (2, 2, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 4, 5), (2, 2, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 3, 3), (2, 2, 3, 3), {"strides": [3, 2], "output_shape": [10, 8]}),
    ((1, 3, 7), (3, 2, 4), {"strides": [3], "pads": [2, 1]}),
    ((1, 2, 3, 2, 3), (2, 1, 2, 2, 2), {"strides": [2, 1, 2]}),
]


@pytest.mark.parametrize("x_shape, w_shape, attrs", CASES)
def test_matches_onnxruntime(x_shape, w_shape, attrs):
    groups = attrs.get("group", 1)
    values = {"x": RNG.standard_normal(x_shape).astype(np.float32),
              "w": RNG.standard_normal(w_shape).astype(np.float32),
              "b": RNG.standard_normal(w_shape[1] * groups).astype(np.float32)}
    check_against_ort("ConvTranspose", ["x", "w", "b"], values, attrs=attrs, constants=["w", "b"], rtol=1e-4,
                      atol=1e-4)
