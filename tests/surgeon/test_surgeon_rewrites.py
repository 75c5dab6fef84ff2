"""sanitize's named rewrites: each against onnxruntime on the original model, opt-out by `skip`, idempotent, and
the node count against onnxslim on the shared models."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from surgeon_models import run_ort, shared_model, text_feeds

from surgeon.errors import SurgeonError
from surgeon.model_io import load_model
from surgeon.sanitize import SanitizeOptions, sanitize
from surgeon.shapes import override_input_shapes

# Static shapes for the static variant of each shared model; the dynamic variant keeps the exported axes.
SHAPES = {"mobilenet_v2": {"input": [1, 3, 224, 224]}, "gpt2_tiny": {"input_ids": [2, 16]},
          "bert_tiny": {"input_ids": [2, 16], "attention_mask": [2, 16]}}
# Run shapes for the dynamic variants: none of them the shape onnx would guess.
RUN_SHAPES = {"mobilenet_v2": [[2, 3, 224, 224]], "gpt2_tiny": [[1, 5], [3, 11]], "bert_tiny": [[1, 5], [3, 11]]}


def _feeds(model_name: str, shape: list[int]) -> dict[str, np.ndarray]:
    if model_name == "mobilenet_v2":
        return {"input": np.random.default_rng(5).standard_normal(shape).astype(np.float32)}
    return text_feeds({name: shape for name in SHAPES[model_name]}, seed=4)


def _assert_within_float32_rounding(actual: dict, expected: dict) -> None:
    """Identical up to 4 float32 ulps of each output's largest magnitude (folding BatchNormalization into a Conv
    rounds its weights once; onnxruntime's own fusion does the same)."""
    assert actual.keys() == expected.keys()
    for key in expected:
        scale = np.abs(expected[key]).max() if expected[key].size else 0.0
        np.testing.assert_allclose(actual[key], expected[key], rtol=0, atol=4 * np.spacing(np.float32(scale)))


def _model(nodes, inputs, outputs, inits=(), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "rewrite", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _sanitize(model: onnx.ModelProto, **options) -> tuple[onnx.ModelProto, Counter]:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    result, report = sanitize(copy, SanitizeOptions(fold_constants=True, **options))
    onnx.checker.check_model(result)
    return result, report.rewrites


@pytest.fixture(scope="module", params=[(name, static) for name in SHAPES for static in (False, True)],
                ids=lambda p: f"{p[0]}-{'static' if p[1] else 'dynamic'}")
def shared_case(request):
    name, static = request.param
    path = shared_model(name)
    shapes = SHAPES[name] if static else {}
    model, report = sanitize(load_model(path), SanitizeOptions(fold_constants=True, input_shapes=shapes))
    return name, static, path, model, report


def test_shared_models_match_the_original(shared_case) -> None:
    name, static, path, model, _ = shared_case
    for shape in ([list(SHAPES[name].values())[0]] if static else RUN_SHAPES[name]):
        feeds = _feeds(name, shape)
        _assert_within_float32_rounding(run_ort(model, feeds), run_ort(path, feeds))


def test_shared_models_no_larger_than_onnxslim(shared_case) -> None:
    onnxslim = pytest.importorskip("onnxslim")
    name, static, path, model, _ = shared_case
    original = onnx.load(path)
    if static:
        override_input_shapes(original, SHAPES[name])
    slimmed = onnxslim.slim(original)
    assert len(model.graph.node) <= len(slimmed.graph.node), (Counter(_ops(model)) - Counter(_ops(slimmed)))


def test_sanitizing_twice_changes_nothing(shared_case) -> None:
    _, _, _, model, first = shared_case
    assert first.rewrites
    again, report = sanitize(onnx.load_from_string(model.SerializeToString()), SanitizeOptions(fold_constants=True))
    assert report.rewrites == Counter() and len(report.passes) == 1
    assert _ops(again) == _ops(model)


def _conv_bn_model(with_bias: bool) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    conv_inputs = ["x", "w", "b"] if with_bias else ["x", "w"]
    nodes = [helper.make_node("Conv", conv_inputs, ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["y"], epsilon=1e-3)]
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "gamma"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "beta"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "mean"),
             numpy_helper.from_array(rng.uniform(0.5, 2, 8).astype(np.float32), "var")]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 10, 10])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8, 10, 10])],
                  inits if with_bias else inits[:1] + inits[2:])


@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_batchnorm_folds_into_the_conv(with_bias: bool) -> None:
    model = _conv_bn_model(with_bias)
    folded, rewrites = _sanitize(model)
    assert _ops(folded) == ["Conv"] and rewrites["conv-batchnorm"] == 1
    x = {"x": np.random.default_rng(1).standard_normal((2, 3, 10, 10)).astype(np.float32)}
    _assert_within_float32_rounding(run_ort(folded, x), run_ort(model, x))
    kept, rewrites = _sanitize(model, skip=frozenset({"conv-batchnorm"}))
    assert _ops(kept) == ["Conv", "BatchNormalization"] and "conv-batchnorm" not in rewrites


def _dynamic_reshape_model() -> onnx.ModelProto:
    """x[b, s, 8] → Reshape(x, Concat(b, s, -1, 2)) → Expand(·, Where(Equal(Shape, -1), 1, Shape)) + Add 0."""
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "zero"], ["b"], axis=0),
             helper.make_node("Gather", ["shape", "one"], ["s"], axis=0),
             helper.make_node("Unsqueeze", ["b", "axes"], ["b1"]),
             helper.make_node("Unsqueeze", ["s", "axes"], ["s1"]),
             helper.make_node("Concat", ["b1", "s1", "minus_one", "two"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["r"]),
             helper.make_node("Shape", ["r"], ["r_shape"]),
             helper.make_node("Equal", ["r_shape", "minus_one"], ["is_minus_one"]),
             helper.make_node("Where", ["is_minus_one", "one_1d", "r_shape"], ["expand_to"]),
             helper.make_node("Expand", ["r", "expand_to"], ["e"]),
             helper.make_node("Add", ["e", "zeros"], ["y"])]
    inits = [numpy_helper.from_array(np.array(v, np.int64), name) for name, v in
             (("zero", 0), ("one", 1), ("axes", [0]), ("minus_one", [-1]), ("two", [2]), ("one_1d", [1]))]
    inits.append(numpy_helper.from_array(np.zeros((1, 2), np.float32), "zeros"))
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", 8])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", 4, 2])], inits)


def test_shape_arithmetic_on_symbolic_dims_becomes_constant() -> None:
    model = _dynamic_reshape_model()
    simplified, rewrites = _sanitize(model)
    assert _ops(simplified) == ["Reshape"]
    target = numpy_helper.to_array(next(i for i in simplified.graph.initializer
                                        if i.name == simplified.graph.node[0].input[1]))
    assert target.tolist() == [0, 0, -1, 2]
    assert rewrites["shape-arithmetic"] >= 2 and rewrites["noop"] == 2  # the Expand and the Add
    for shape in ((1, 3, 8), (4, 5, 8)):
        x = {"x": np.random.default_rng(2).standard_normal(shape).astype(np.float32)}
        np.testing.assert_array_equal(run_ort(simplified, x)["y"], run_ort(model, x)["y"])
    kept, _ = _sanitize(model, skip=frozenset({"shape-arithmetic"}))
    assert "Shape" in _ops(kept) and "Concat" in _ops(kept)


def test_add_zero_that_broadcasts_stays() -> None:
    """x[b, 1] + zeros[3] is x broadcast to [b, 3]: not a no-op, so it stays."""
    model = _model([helper.make_node("Add", ["x", "zeros"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 1])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3])],
                   [numpy_helper.from_array(np.zeros(3, np.float32), "zeros")])
    kept, _ = _sanitize(model)
    assert _ops(kept) == ["Add"]


def test_unknown_skip_name_is_refused() -> None:
    with pytest.raises(SurgeonError, match="no rewrite named 'fold-everything'.*conv-batchnorm"):
        _sanitize(_conv_bn_model(True), skip=frozenset({"fold-everything"}))



def _wrapped(nodes, x_type: int, x_shape: list, inits=(), y_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    """x → Relu (for float x) → `nodes` (reading 'x_in', writing 'y_out') → Relu → y, so the nodes under test
    touch neither a graph input nor a graph output."""
    pre = [helper.make_node("Relu", ["x"], ["x_in"])] if x_type == TensorProto.FLOAT else \
        [helper.make_node("Identity", ["x"], ["x_in"])]
    post = [helper.make_node("Relu", ["y_out"], ["y"])] if y_type == TensorProto.FLOAT else \
        [helper.make_node("Neg", ["y_out"], ["y"])]
    graph = helper.make_graph(pre + list(nodes) + post, "wrapped",
                              [helper.make_tensor_value_info("x", x_type, x_shape)],
                              [helper.make_tensor_value_info("y", y_type, None)], list(inits))
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    onnx.checker.check_model(model)
    return model


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


_RNG = np.random.default_rng(11)
_W = _RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
_CASES = {
    "pad-into-conv": (
        [helper.make_node("Pad", ["x_in", "pads"], ["p"]), helper.make_node("Conv", ["p", "w"], ["y_out"])],
        TensorProto.FLOAT, ["n", 3, 8, 8], [_const("pads", np.array([0, 0, 1, 2, 0, 0, 1, 0], np.int64)),
                                            _const("w", _W)], ["Relu", "Conv", "Relu"]),
    "pad-into-avgpool": (
        [helper.make_node("Pad", ["x_in", "pads"], ["p"]),
         helper.make_node("AveragePool", ["p"], ["y_out"], kernel_shape=[3, 3])],
        TensorProto.FLOAT, ["n", 3, 8, 8], [_const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))],
        ["Relu", "AveragePool", "Relu"]),
    "conv-affine": (
        [helper.make_node("Conv", ["x_in", "w", "b"], ["c"]), helper.make_node("Mul", ["c", "s"], ["m"]),
         helper.make_node("Add", ["t", "m"], ["y_out"])],
        TensorProto.FLOAT, ["n", 3, 8, 8],
        [_const("w", _W), _const("b", _RNG.standard_normal(4).astype(np.float32)),
         _const("s", _RNG.standard_normal((4, 1, 1)).astype(np.float32)),
         _const("t", _RNG.standard_normal((1, 4, 1, 1)).astype(np.float32))], ["Relu", "Conv", "Relu"]),
    "matmul-affine": (
        [helper.make_node("MatMul", ["x_in", "w"], ["c"]), helper.make_node("Mul", ["c", "s"], ["y_out"])],
        TensorProto.FLOAT, ["n", 5, 8], [_const("w", _RNG.standard_normal((8, 6)).astype(np.float32)),
                                         _const("s", _RNG.standard_normal(6).astype(np.float32))],
        ["Relu", "MatMul", "Relu"]),
    "gemm-affine": (
        [helper.make_node("Gemm", ["x_in", "w", "b"], ["c"], transB=1, beta=0.5),
         helper.make_node("Mul", ["c", "s"], ["m"]), helper.make_node("Add", ["m", "t"], ["y_out"])],
        TensorProto.FLOAT, ["n", 8], [_const("w", _RNG.standard_normal((6, 8)).astype(np.float32)),
                                      _const("b", _RNG.standard_normal(6).astype(np.float32)),
                                      _const("s", _RNG.standard_normal((1, 6)).astype(np.float32)),
                                      _const("t", _RNG.standard_normal(6).astype(np.float32))],
        ["Relu", "Gemm", "Relu"]),
    "cast-chain": (
        [helper.make_node("Cast", ["x_in"], ["a"], to=TensorProto.INT64),
         helper.make_node("Cast", ["a"], ["y_out"], to=TensorProto.FLOAT)],
        TensorProto.INT32, ["n", 5], [], ["Cast", "Relu"]),
    "cast-roundtrip": (
        [helper.make_node("Cast", ["x_in"], ["a"], to=TensorProto.DOUBLE),
         helper.make_node("Cast", ["a"], ["y_out"], to=TensorProto.FLOAT)],
        TensorProto.FLOAT, ["n", 5], [], ["Relu", "Relu"]),
    "identity-resize": (
        [helper.make_node("Resize", ["x_in", "", "scales"], ["y_out"], mode="linear")],
        TensorProto.FLOAT, ["n", 3, 4, 4], [_const("scales", np.ones(4, np.float32))], ["Relu", "Relu"]),
    "full-slice": (
        [helper.make_node("Slice", ["x_in", "starts", "ends"], ["y_out"])],
        TensorProto.FLOAT, ["n", 5], [_const("starts", np.array([0], np.int64)),
                                      _const("ends", np.array([2**63 - 1], np.int64))], ["Relu", "Relu"]),
    "concat-slices": (
        [helper.make_node("Slice", ["x_in", "s0", "e0", "axis"], ["a"]),
         helper.make_node("Slice", ["x_in", "e0", "e1", "axis"], ["b"]),
         helper.make_node("Concat", ["a", "b"], ["y_out"], axis=-1)],
        TensorProto.FLOAT, ["n", 6], [_const("s0", np.array([0], np.int64)), _const("e0", np.array([2], np.int64)),
                                      _const("e1", np.array([6], np.int64)), _const("axis", np.array([1], np.int64))],
        ["Relu", "Relu"]),
    "squeeze-pair": (
        [helper.make_node("Unsqueeze", ["x_in", "axes"], ["a"]), helper.make_node("Squeeze", ["a", "axes"], ["y_out"])],
        TensorProto.FLOAT, ["n", "m"], [_const("axes", np.array([1], np.int64))], ["Relu", "Relu"]),
    "cse": (
        [helper.make_node("Sigmoid", ["x_in"], ["a"]), helper.make_node("Sigmoid", ["x_in"], ["b"]),
         helper.make_node("Sub", ["a", "b"], ["y_out"])],
        TensorProto.FLOAT, ["n", 5], [], ["Relu", "Sigmoid", "Sub", "Relu"]),
}
# The rewrite each case exercises (where it differs from the case's name).
_REWRITE = {"pad-into-avgpool": "pad-into-conv", "gemm-affine": "matmul-affine", "cast-roundtrip": "cast-chain",
            "identity-resize": "noop", "full-slice": "noop"}
_INEXACT = {"conv-affine", "matmul-affine", "gemm-affine"}  # folded weights are rounded once


@pytest.mark.parametrize("case", sorted(_CASES))
def test_rewrite_matches_onnxruntime_and_can_be_skipped(case: str) -> None:
    nodes, x_type, x_shape, inits, expected_ops = _CASES[case]
    model = _wrapped(nodes, x_type, x_shape, inits)
    rewrite = _REWRITE.get(case, case)
    simplified, rewrites = _sanitize(model)
    assert _ops(simplified) == expected_ops and rewrites[rewrite] >= 1, rewrites
    shape = [2 if isinstance(d, str) else d for d in x_shape]
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32) if x_type == TensorProto.FLOAT else \
        rng.integers(-2**31, 2**31 - 1, shape, dtype=np.int64).astype(np.int32)
    expected, actual = run_ort(model, {"x": x}), run_ort(simplified, {"x": x})
    if case in _INEXACT:
        _assert_within_float32_rounding(actual, expected)
    else:
        np.testing.assert_array_equal(actual["y"], expected["y"])
    kept, rewrites = _sanitize(model, skip=frozenset({rewrite}))
    assert rewrite not in rewrites and len(kept.graph.node) > len(simplified.graph.node)


def test_cast_through_a_narrower_type_stays() -> None:
    """float → int32 → float truncates: not a no-op."""
    model = _wrapped([helper.make_node("Cast", ["x_in"], ["a"], to=TensorProto.INT32),
                      helper.make_node("Cast", ["a"], ["y_out"], to=TensorProto.FLOAT)], TensorProto.FLOAT, [3])
    kept, _ = _sanitize(model)
    assert _ops(kept) == ["Relu", "Cast", "Cast", "Relu"]


def test_nonzero_pad_and_partial_slices_stay() -> None:
    padded = _wrapped([helper.make_node("Pad", ["x_in", "pads", "value"], ["p"]),
                       helper.make_node("Conv", ["p", "w"], ["y_out"])], TensorProto.FLOAT, [1, 3, 8, 8],
                      [_const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)),
                       _const("value", np.array(1.0, np.float32)), _const("w", _W)])
    assert "Pad" in _ops(_sanitize(padded)[0])
    partial = _wrapped(_CASES["concat-slices"][0], TensorProto.FLOAT, ["n", 7], _CASES["concat-slices"][3])
    assert "Concat" in _ops(_sanitize(partial)[0])


def test_cli_reports_rewrite_counts_and_honours_skip(tmp_path, capsys) -> None:
    from polyx.cli.app import main

    source, out = tmp_path / "conv_bn.onnx", tmp_path / "out.onnx"
    onnx.save(_conv_bn_model(True), source)
    assert main(["surgeon", "sanitize", str(source), "-o", str(out), "--fold-constants"]) == 0
    assert "rewrites: conv-batchnorm x1" in capsys.readouterr().out
    assert _ops(onnx.load(out)) == ["Conv"]
    assert main(["surgeon", "sanitize", str(source), "-o", str(out), "--fold-constants", "--skip", "conv-batchnorm",
                 "cse"]) == 0
    assert "rewrites:" not in capsys.readouterr().out
    assert _ops(onnx.load(out)) == ["Conv", "BatchNormalization"]
    assert main(["surgeon", "sanitize", str(source), "-o", str(out), "--fold-constants", "--skip", "bogus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no rewrite named 'bogus'" in err[0] and "shape-arithmetic" in err[0]


def test_reshape_target_of_swapped_symbolic_dims_stays_computed() -> None:
    """Reshape(x[b, s, 8], [s, b, 8]): neither dim copies the input's dim at its axis, and one -1 cannot stand for
    two unknown dims, so the target stays computed (and the model still swaps them correctly)."""
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "first_two"], ["bs"], axis=0),
             helper.make_node("Gather", ["bs", "swap"], ["sb"], axis=0),
             helper.make_node("Concat", ["sb", "eight"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["r"]),
             helper.make_node("Relu", ["r"], ["y"])]
    inits = [_const("first_two", np.array([0, 1], np.int64)), _const("swap", np.array([1, 0], np.int64)),
             _const("eight", np.array([8], np.int64))]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", 8])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["s", "b", 8])], inits)
    simplified, _ = _sanitize(model)
    assert "Shape" in _ops(simplified) and "Reshape" in _ops(simplified)
    x = {"x": np.random.default_rng(4).standard_normal((2, 3, 8)).astype(np.float32)}
    result = run_ort(simplified, x)["y"]
    assert result.shape == (3, 2, 8)
    np.testing.assert_array_equal(result, run_ort(model, x)["y"])
