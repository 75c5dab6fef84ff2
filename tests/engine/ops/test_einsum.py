"""EINSUM layers and ONNX Einsum: backend cases and onnxruntime on ellipsis/implicit-output equations."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_ort, node_model

from engine.conformance.harness import parse_onnx
from engine.errors import ParseError

RNG = np.random.default_rng(15)


@pytest.mark.parametrize("case", cases_for(["Einsum"]), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


@pytest.mark.parametrize("equation, shapes", [
    ("...ij,...jk->...ik", [(2, 3, 4, 5), (1, 3, 5, 2)]),
    ("bij,bjk", [(2, 3, 4), (2, 4, 5)]),
    ("ij,jk,kl->il", [(3, 4), (4, 5), (5, 2)]),
    ("i...i->...", [(3, 2, 3)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
])
def test_matches_onnxruntime(equation, shapes):
    names = [f"x{i}" for i in range(len(shapes))]
    values = {n: RNG.standard_normal(s).astype(np.float32) for n, s in zip(names, shapes)}
    check_against_ort("Einsum", names, values, attrs={"equation": equation}, rtol=1e-5, atol=1e-5, opset=12)


def test_wrong_operand_count_is_a_parse_error():
    values = {"x": np.ones((2, 2), np.float32)}
    with pytest.raises(ParseError, match="operands"):
        parse_onnx(node_model("Einsum", ["x"], values, attrs={"equation": "ij,jk->ik"}, opset=12))
