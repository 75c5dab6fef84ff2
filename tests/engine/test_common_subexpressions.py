"""Common-subexpression elimination (engine/passes/common_subexpressions.py): nodes computing the same thing from
the same inputs (or equal constants) become one, in cascade; what differs, what is observable and what is not a
pure function stays. Outputs are checked against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime_reference import onnxruntime_outputs
from shared_model_cases import MODELS

from engine.conformance.harness import build_engine_for_feeds, parse_onnx

CSE = "common_subexpression_elimination"


def _constant(name: str, value) -> helper.NodeProto:
    return helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(np.asarray(value)))


def mask_model(third_fill: float = -1e9, second_is_output: bool = False):
    """Three 'layers' each building the additive mask Where(x > 0, 0, fill) from their own Constant nodes (as
    transformers' exports do), then adding it to their own input; the first two masks are equal."""
    nodes = [helper.make_node("Greater", ["x", "zero"], ["positive"], name="greater")]
    outputs = []
    for i, fill in enumerate((-1e4, -1e4, third_fill)):
        nodes += [_constant(f"keep{i}", np.float32(0)), _constant(f"fill{i}", np.float32(fill)),
                  helper.make_node("Where", ["positive", f"keep{i}", f"fill{i}"], [f"mask{i}"], name=f"where{i}"),
                  helper.make_node("Add", [f"y{i}_in", f"mask{i}"], [f"y{i}"], name=f"add{i}")]
        outputs.append(f"y{i}")
    if second_is_output:
        outputs.append("mask1")
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 5]) for n in ("x", "y0_in", "y1_in", "y2_in")]
    graph = helper.make_graph(nodes, "masks", inputs,
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
                              [numpy_helper.from_array(np.float32(0), "zero")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _feeds(model) -> dict:
    rng = np.random.default_rng(8)
    return {i.name: rng.standard_normal((2, 5)).astype(np.float32) for i in model.graph.input}


def _built(model):
    feeds = _feeds(model)
    engine = build_engine_for_feeds(parse_onnx(model), feeds, device="cpu")
    got = engine.create_execution_context().execute(feeds)
    want = onnxruntime_outputs(model, feeds)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-6, atol=1e-6, err_msg=name)
    return engine, {r["name"] for r in engine.layer_info()}


def test_equal_masks_from_equal_constants_become_one_and_a_different_one_stays():
    engine, names = _built(mask_model())
    assert engine.meta["passes"][CSE] == 1
    assert "where0" in names and "where1" not in names and "where2" in names, sorted(names)


def test_a_mask_that_is_a_network_output_stays_observable():
    engine, names = _built(mask_model(second_is_output=True))
    assert engine.meta["passes"][CSE] == 0 and {"where0", "where1"} <= names


def test_merges_cascade_through_the_readers_of_merged_nodes():
    """Two equal Relu -> Sigmoid chains on the same input: the Relus merge, which makes the Sigmoids equal."""
    nodes = [helper.make_node("Relu", ["x"], ["r0"], name="relu0"), helper.make_node("Sigmoid", ["r0"], ["s0"],
                                                                                      name="sigmoid0"),
             helper.make_node("Relu", ["x"], ["r1"], name="relu1"), helper.make_node("Sigmoid", ["r1"], ["s1"],
                                                                                      name="sigmoid1"),
             helper.make_node("Mul", ["s0", "s1"], ["y"], name="mul")]
    graph = helper.make_graph(nodes, "chains", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    engine, names = _built(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert engine.meta["passes"][CSE] == 2
    assert {"relu0", "sigmoid0", "mul"} <= names and not {"relu1", "sigmoid1"} & names


def test_different_parameters_or_inputs_are_not_merged():
    nodes = [helper.make_node("Softmax", ["x"], ["a"], name="softmax_last", axis=-1),
             helper.make_node("Softmax", ["x"], ["b"], name="softmax_first", axis=0),
             helper.make_node("Softmax", ["w"], ["c"], name="softmax_of_w", axis=-1),
             helper.make_node("Sum", ["a", "b", "c"], ["y"], name="sum")]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 5]) for n in ("x", "w")]
    graph = helper.make_graph(nodes, "softmaxes", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    engine, names = _built(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert engine.meta["passes"][CSE] == 0 and {"softmax_last", "softmax_first", "softmax_of_w"} <= names


@pytest.mark.skipif(not (MODELS / "bert_tiny.onnx").is_file(), reason="shared model bert_tiny is missing")
def test_bert_tiny_builds_its_attention_mask_once():
    """transformers' export makes the additive mask in each layer (a Where per layer): one remains."""
    import onnx

    model = onnx.load(MODELS / "bert_tiny.onnx")
    wheres = [n.name for n in model.graph.node if n.op_type == "Where" and n.name.endswith("attention/self/Where")]
    assert len(wheres) == 2, wheres
    feeds = {"input_ids": np.random.default_rng(0).integers(0, 100, (2, 16)).astype(np.int64),
             "attention_mask": np.ones((2, 16), np.int64)}
    feeds["attention_mask"][1, 10:] = 0
    engine = build_engine_for_feeds(parse_onnx(model), feeds, device="cpu")
    kept = [r["name"] for r in engine.layer_info() if r["name"] in wheres]
    assert kept == wheres[:1], kept
    got = engine.create_execution_context().execute(feeds)
    for name, value in onnxruntime_outputs(model, feeds).items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-4, err_msg=name)


def _twin_matmul_model(w0: np.ndarray, w1: np.ndarray):
    """y = x @ w0 + x @ w1, the two weights separate initializers (equal or not)."""
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["m0"], name="matmul0"),
             helper.make_node("MatMul", ["x", "w1"], ["m1"], name="matmul1"),
             helper.make_node("Add", ["m0", "m1"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "twins", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w0, "w0"), numpy_helper.from_array(w1, "w1")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_readers_of_equal_refittable_weights_stay_apart_so_a_refit_of_one_changes_only_it():
    """Equal initial values are no promise in a refittable build: merging the MatMuls would make a refit of w1
    change both products (or neither)."""
    import engine as trt

    w = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    model = _twin_matmul_model(w, w.copy())
    x = _feeds(model)["x"]

    def built(*flags):
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        network = builder.create_network()
        parser = trt.OnnxParser(network, builder.logger)
        assert parser.parse(model.SerializeToString()), parser.errors_text()
        config = builder.create_builder_config()
        config.device, config.builder_optimization_level = "cpu", 0
        for flag in flags:
            config.set_flag(flag)
        return trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(
            builder.build_serialized_network(network, config))

    assert built().meta["passes"][CSE] == 1, "a plain build bakes the weights in: equal ones are one product"
    engine = built(trt.BuilderFlag.REFIT)
    assert engine.meta["passes"][CSE] == 0
    new_w1 = np.random.default_rng(4).standard_normal((5, 4)).astype(np.float32)
    refitter = trt.Refitter(engine, trt.Logger())
    assert refitter.set_named_weights("w1", new_w1) and refitter.refit_cuda_engine()
    got = engine.create_execution_context().execute({"x": x})["y"]
    np.testing.assert_allclose(got, x.astype(np.float64) @ w + x.astype(np.float64) @ new_w1, rtol=1e-5, atol=1e-5)


def test_control_flow_is_left_alone():
    """Two equal If nodes on the same condition: equal today, but a subgraph is not compared, so both stay."""
    def branch(name: str, value: float):
        return helper.make_graph([_constant(f"{name}_value", np.full(3, value, np.float32))], name, [],
                                 [helper.make_tensor_value_info(f"{name}_value", TensorProto.FLOAT, [3])])

    nodes = [helper.make_node("If", ["c"], [f"branch{i}"], name=f"if{i}", then_branch=branch(f"then{i}", 1.0),
                              else_branch=branch(f"else{i}", 2.0)) for i in range(2)]
    nodes.append(helper.make_node("Add", ["branch0", "branch1"], ["y"], name="add"))
    graph = helper.make_graph(nodes, "ifs", [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for condition in (True, False):
        feeds = {"c": np.array(condition)}
        engine = build_engine_for_feeds(parse_onnx(model), feeds, device="cpu")
        assert engine.meta["passes"][CSE] == 0
        assert {"if0", "if1"} <= {r["name"] for r in engine.layer_info()}
        np.testing.assert_array_equal(engine.create_execution_context().execute(feeds)["y"],
                                      onnxruntime_outputs(model, feeds)["y"])
