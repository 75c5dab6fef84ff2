"""sanitize: folding to a fixed point on real PyTorch exports, simplification, size threshold, external data."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
from onnx import TensorProto, helper, numpy_helper
from surgeon_models import STATIC_SHAPES, run_ort, shared_model, text_feeds

from surgeon.errors import SurgeonError
from surgeon.model_io import load_model, save_model
from surgeon.sanitize import SanitizeOptions, sanitize
from surgeon.shapes import override_input_shapes


def _compute_nodes(model: onnx.ModelProto) -> int:
    """Nodes that compute something (Constant nodes only carry data; onnxsim keeps some, we store initializers)."""
    return sum(1 for n in model.graph.node if n.op_type != "Constant")


def _foldable_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes none of whose inputs depends on a graph input: everything they compute is a constant."""
    live = {i.name for i in model.graph.input}
    foldable = []
    for node in model.graph.node:
        if any(name in live for name in node.input if name):
            live.update(node.output)
        else:
            foldable.append(f"{node.name} ({node.op_type})")
    return foldable


@pytest.fixture(scope="module", params=["gpt2_tiny", "bert_tiny"])
def sanitized(request):
    path = shared_model(request.param)
    model, report = sanitize(load_model(path), SanitizeOptions(fold_constants=True,
                                                               input_shapes=STATIC_SHAPES[request.param]))
    return request.param, path, model, report


def test_static_shapes_fold_every_foldable_node(sanitized) -> None:
    name, path, model, report = sanitized
    onnx.checker.check_model(model)
    assert _foldable_nodes(model) == []
    ops = Counter(n.op_type for n in model.graph.node)
    for shape_op in ("Shape", "ConstantOfShape", "Range", "Constant", "Identity", "Unsqueeze", "Squeeze"):
        assert ops[shape_op] == 0, (shape_op, ops)
    assert report.nodes_before == len(onnx.load(path).graph.node)
    assert report.nodes_after == len(model.graph.node) < report.nodes_before / 4


def test_sanitized_outputs_match_onnxruntime_to_the_last_bits(sanitized) -> None:
    """Folding changes the graph onnxruntime optimizes, so its fused kernels may round differently: onnxruntime
    1.32 gives identical outputs, 1.30 differs by up to 7e-7 on bert_tiny (outputs up to ~4). Allow 4 float32 ulps
    of each output's largest magnitude, no more."""
    name, path, model, _ = sanitized
    feeds = text_feeds(STATIC_SHAPES[name], seed=3)
    expected, actual = run_ort(path, feeds), run_ort(model, feeds)
    assert expected.keys() == actual.keys()
    for key in expected:
        scale = np.abs(expected[key]).max() if expected[key].size else 0.0
        np.testing.assert_allclose(actual[key], expected[key], rtol=0, atol=4 * np.spacing(np.float32(scale)))


def test_not_worse_than_graphsurgeon_baseline(sanitized) -> None:
    name, path, model, _ = sanitized
    baseline = override_input_shapes(onnx.load(path), STATIC_SHAPES[name])
    graph = gs.import_onnx(baseline)
    graph.fold_constants().cleanup()
    assert _compute_nodes(model) <= _compute_nodes(gs.export_onnx(graph))


def test_not_worse_than_onnxsim(sanitized) -> None:
    onnxsim = pytest.importorskip("onnxsim")
    name, path, model, _ = sanitized
    simplified, ok = onnxsim.simplify(onnx.load(path), overwrite_input_shapes=STATIC_SHAPES[name])
    assert ok
    assert _compute_nodes(model) <= _compute_nodes(simplified)


def test_dynamic_model_keeps_working_for_other_shapes() -> None:
    path = shared_model("gpt2_tiny")
    model, report = sanitize(load_model(path), SanitizeOptions(fold_constants=True))
    assert report.nodes_after < report.nodes_before
    for shape in ([1, 5], [3, 11]):
        feeds = text_feeds({"input_ids": shape})
        np.testing.assert_array_equal(run_ort(model, feeds)["logits"], run_ort(path, feeds)["logits"])


def _partly_dynamic_reshape_model() -> onnx.ModelProto:
    """x[batch, 8] → Reshape(x, Concat([-1], Unsqueeze(Gather(Shape(x), 1)))): reads only the static dim 1."""
    nodes = [helper.make_node("Shape", ["x"], ["shape"], name="shape"),
             helper.make_node("Gather", ["shape", "one"], ["dim1"], axis=0, name="gather"),
             helper.make_node("Unsqueeze", ["dim1", "axes"], ["dim1_1d"], name="unsqueeze"),
             helper.make_node("Concat", ["minus_one", "dim1_1d"], ["target"], axis=0, name="concat"),
             helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape")]
    inits = [numpy_helper.from_array(np.array(1, np.int64), "one"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus_one")]
    graph = helper.make_graph(nodes, "partly_dynamic", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                      ["batch", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_fold_shapes_folds_static_dims_of_a_dynamic_model() -> None:
    folded, _ = sanitize(_partly_dynamic_reshape_model(), SanitizeOptions(fold_constants=True))
    assert [n.op_type for n in folded.graph.node] == ["Reshape"]
    kept, _ = sanitize(_partly_dynamic_reshape_model(), SanitizeOptions(fold_constants=True, fold_shapes=False))
    assert "Shape" in [n.op_type for n in kept.graph.node]
    x = np.arange(24, dtype=np.float32).reshape(3, 8)
    np.testing.assert_array_equal(run_ort(folded, {"x": x})["y"], x)


def _big_constant_model() -> onnx.ModelProto:
    """y = x + ConstantOfShape([512, 1024]) (2 MiB once folded)."""
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["zeros"], name="fill",
                              value=numpy_helper.from_array(np.array([0.5], np.float32))),
             helper.make_node("Add", ["x", "zeros"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [512, 1024])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [512, 1024])],
                              [numpy_helper.from_array(np.array([512, 1024], np.int64), "shape")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_size_threshold_leaves_huge_constants_computed() -> None:
    limited, _ = sanitize(_big_constant_model(), SanitizeOptions(fold_constants=True, size_threshold=1 << 20))
    assert [n.op_type for n in limited.graph.node] == ["ConstantOfShape", "Add"]
    unlimited, _ = sanitize(_big_constant_model(), SanitizeOptions(fold_constants=True))
    assert [n.op_type for n in unlimited.graph.node] == ["Add"]


def test_num_passes_caps_the_fixed_point_loop() -> None:
    model = load_model(shared_model("bert_tiny"))
    _, report = sanitize(model, SanitizeOptions(fold_constants=True, num_passes=1,
                                                input_shapes=STATIC_SHAPES["bert_tiny"]))
    assert len(report.passes) == 1


def test_external_data_models_load_and_save(tmp_path) -> None:
    model = _big_constant_model()
    inputs = {"x": np.random.default_rng(0).standard_normal((512, 1024)).astype(np.float32)}
    source = tmp_path / "external.onnx"
    onnx.save_model(model, str(source), save_as_external_data=True, location="external.onnx.data", size_threshold=0)
    loaded = load_model(source)
    result, _ = sanitize(loaded, SanitizeOptions(fold_constants=True, cleanup=True, toposort=True))
    target = tmp_path / "out.onnx"
    data_file = save_model(result, target, input_path=source)
    assert data_file == tmp_path / "out.onnx.data" and data_file.stat().st_size >= 512 * 1024 * 4
    assert target.stat().st_size < 64 * 1024
    np.testing.assert_array_equal(run_ort(target, inputs)["y"], inputs["x"] + np.float32(0.5))


def test_cyclic_model_is_rejected_on_load(tmp_path) -> None:
    from surgeon_models import make_cyclic_model

    path = tmp_path / "cycle.onnx"
    onnx.save(make_cyclic_model(), path)
    with pytest.raises(SurgeonError, match="cycle through node"):
        load_model(path)


def test_unsorted_acyclic_model_is_sorted(tmp_path) -> None:
    nodes = [helper.make_node("Relu", ["a"], ["y"], name="second"), helper.make_node("Neg", ["x"], ["a"], name="first")]
    graph = helper.make_graph(nodes, "unsorted", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    path = tmp_path / "unsorted.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    result, _ = sanitize(load_model(path), SanitizeOptions(toposort=True))
    assert [n.name for n in result.graph.node] == ["first", "second"]
    onnx.checker.check_model(result)
