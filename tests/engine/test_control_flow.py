"""If, Loop and Scan: imported as CONDITIONAL / LOOP layers, checked against onnxruntime (or float64 NumPy for the
TensorRT-style API), through a plan round trip, with constant conditions folded, and with errors naming the node."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from control_flow_models import if_on_constant, if_on_input, loop_until_large, loop_with_nested_if, scan_reversed_axes
from onnx import TensorProto as TP
from onnx import helper
from onnxruntime_reference import onnxruntime_outputs

import engine as trt
from engine.conformance.harness import build_engine_for_feeds, parse_onnx
from engine.container import pack, unpack
from engine.enums import LayerType, LoopOutput, TripLimit
from engine.errors import EngineError, PlanFormatError, UnsupportedCategory
from engine.plan import FORMAT_VERSION, MAGIC

RNG = np.random.default_rng(7)


def _engine(model: onnx.ModelProto, feeds: dict) -> trt.Engine:
    return build_engine_for_feeds(parse_onnx(model), feeds)


def _reloaded(engine: trt.Engine) -> trt.Engine:
    """The plan round trip: serialize, load again."""
    return trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(engine.serialize())


def _layer_types(engine: trt.Engine) -> list[str]:
    return [row["type"] for row in engine.layer_info()]


def _assert_matches(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name].shape == value.shape, name
        np.testing.assert_allclose(got[name], value, rtol=1e-6, atol=1e-6, err_msg=name)


# ------------------------------------------------------------------------------------------------ If
@pytest.mark.parametrize("condition", [True, False])
def test_if_on_a_runtime_condition_matches_onnxruntime_through_a_plan(condition):
    model = if_on_input()
    feeds = {"c": np.array(condition), "x": RNG.standard_normal((2, 3)).astype(np.float32),
             "y": RNG.standard_normal((2, 3)).astype(np.float32)}
    engine = _engine(model, feeds)
    assert "CONDITIONAL" in _layer_types(engine)
    want = onnxruntime_outputs(model, feeds)
    _assert_matches(engine.create_execution_context().execute(feeds), want)
    reloaded = _reloaded(engine)
    _assert_matches(reloaded.create_execution_context().execute(feeds), want)
    # one engine serves both conditions
    flipped = {**feeds, "c": np.array(not condition)}
    _assert_matches(reloaded.create_execution_context().execute(flipped), onnxruntime_outputs(model, flipped))


@pytest.mark.parametrize("flag", [True, False])
def test_if_on_a_constant_condition_is_folded_to_its_branch(flag):
    model = if_on_constant(flag)
    feeds = {"x": np.array([-1.5, 0.0, 2.0, 3.25], np.float32)}
    engine = _engine(model, feeds)
    assert "CONDITIONAL" not in _layer_types(engine)
    assert engine.meta["passes"]["constant_conditions_folded"] == 1
    expected = np.maximum(feeds["x"], 0) * 2 if flag else -feeds["x"]  # hand-computed
    got = engine.create_execution_context().execute(feeds)["out"]
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, onnxruntime_outputs(model, feeds)["out"])
    np.testing.assert_array_equal(_reloaded(engine).create_execution_context().execute(feeds)["out"], expected)


# ------------------------------------------------------------------------------------------------ Loop / Scan
@pytest.mark.parametrize("start, limit", [([0.5, 0.25, 1.0], 40.0), ([3.0, 1.0, 2.0], 7.0), ([0.1, 0.1, 0.1], 1e9),
                                          ([1.0, 1.0, 1.0], -1.0)])
def test_loop_with_a_data_dependent_trip_count_matches_onnxruntime(start, limit):
    model = loop_until_large(max_trips=10)
    feeds = {"go": np.array(limit > 0), "x0": np.array(start, np.float32), "limit": np.array(limit, np.float32)}
    engine = _engine(model, feeds)
    want = onnxruntime_outputs(model, feeds)
    got = engine.create_execution_context().execute(feeds)
    _assert_matches(got, want)
    _assert_matches(_reloaded(engine).create_execution_context().execute(feeds), want)
    # the number of iterations really varies with the data (0 when `go` is false, 10 at the trip count)
    assert want["history"].shape[0] == {40.0: 4, 7.0: 1, 1e9: 10, -1.0: 0}[limit]


def test_one_loop_engine_runs_different_trip_counts():
    model = loop_until_large()
    base = {"go": np.array(True), "x0": np.array([1.0, 2.0, 3.0], np.float32)}
    context = _engine(model, {**base, "limit": np.array(10.0, np.float32)}).create_execution_context()
    for limit in (10.0, 100.0, 1000.0):
        feeds = {**base, "limit": np.array(limit, np.float32)}
        _assert_matches(context.execute(feeds), onnxruntime_outputs(model, feeds))


def test_nested_if_in_a_loop_body_reads_an_outer_scope_tensor():
    model = loop_with_nested_if()
    feeds = {"acc0": RNG.standard_normal((2, 2)).astype(np.float32),
             "w": RNG.standard_normal((2, 2)).astype(np.float32)}
    engine = _engine(model, feeds)
    want = onnxruntime_outputs(model, feeds)
    _assert_matches(engine.create_execution_context().execute(feeds), want)
    _assert_matches(_reloaded(engine).create_execution_context().execute(feeds), want)
    # four iterations: +w, -w, +w, -w  -> back to acc0 (float64 reference for the per-step sums)
    acc, sums = feeds["acc0"].astype(np.float64), []
    for i in range(4):
        acc = acc + feeds["w"] if i % 2 == 0 else acc - feeds["w"]
        sums.append(acc.sum())
    np.testing.assert_allclose(want["sums"], sums, rtol=1e-5)
    # the loop body keeps its If: the plan stores the nested subgraph
    header, _ = unpack(engine.serialize(), MAGIC, FORMAT_VERSION, "plan")
    loop = next(layer for layer in header["layers"] if layer["type"] == "LOOP")
    assert "CONDITIONAL" in [layer["type"] for layer in loop["subgraphs"]["body"]["layers"]]


def test_scan_with_axes_and_directions_matches_onnxruntime():
    model = scan_reversed_axes()
    feeds = {"s0": RNG.standard_normal((2, 3)).astype(np.float32),
             "x": RNG.standard_normal((2, 5, 3)).astype(np.float32)}
    engine = _engine(model, feeds)
    want = onnxruntime_outputs(model, feeds)
    _assert_matches(engine.create_execution_context().execute(feeds), want)
    _assert_matches(_reloaded(engine).create_execution_context().execute(feeds), want)


# ------------------------------------------------------------------------------------------------ TensorRT-style API
def test_loop_api_count_iterator_recurrence_and_outputs_against_numpy():
    """A running sum over the rows of x (ILoop: COUNT trip limit, iterator, recurrence, LAST_VALUE / CONCATENATE /
    REVERSE outputs), against float64 NumPy."""
    network = trt.NetworkDefinition()
    x = network.add_input("x", trt.DataType.FLOAT, (5, 3))
    trips = network.add_constant((), np.array(4, np.int64)).get_output(0)
    zero = network.add_constant((3,), np.zeros(3, np.float32)).get_output(0)
    loop = network.add_loop("running_sum")
    loop.add_trip_limit(trips, TripLimit.COUNT)
    row = loop.add_iterator(x, axis=0).get_output(0)
    total = loop.add_recurrence(zero)
    new_total = loop.body.add_elementwise(total.get_output(0), row, trt.ElementWiseOperation.SUM).get_output(0)
    total.set_input(1, new_total)
    last = loop.add_loop_output(total.get_output(0), LoopOutput.LAST_VALUE).get_output(0)
    forward = loop.add_loop_output(new_total, LoopOutput.CONCATENATE, axis=1).get_output(0)
    backward = loop.add_loop_output(new_total, LoopOutput.REVERSE, axis=0).get_output(0)
    for tensor in (last, forward, backward):
        network.mark_output(tensor)
    assert forward.shape == (3, 4) and backward.shape == (4, 3)
    data = RNG.standard_normal((5, 3)).astype(np.float32)
    engine = build_engine_for_feeds(network, {"x": data})
    got = _reloaded(engine).create_execution_context().execute({"x": data})
    sums = np.cumsum(data.astype(np.float64), axis=0)[:4]  # the trip count (4) stops before the 5 rows
    np.testing.assert_allclose(got[last.name], sums[-1], rtol=1e-6)
    np.testing.assert_allclose(got[forward.name], sums.T, rtol=1e-6)
    np.testing.assert_allclose(got[backward.name], sums[::-1], rtol=1e-6)


def test_if_conditional_api_against_numpy():
    network = trt.NetworkDefinition()
    c = network.add_input("c", trt.DataType.BOOL, ())
    x = network.add_input("x", trt.DataType.FLOAT, (4,))
    conditional = network.add_if_conditional("pick")
    conditional.set_condition(c)
    views = conditional.add_input(x)
    then_out = conditional.then_branch.add_unary(views.then_tensor, trt.UnaryOperation.EXP).get_output(0)
    else_out = conditional.else_branch.add_unary(views.else_tensor, trt.UnaryOperation.ABS).get_output(0)
    out = conditional.add_output(then_out, else_out, name="y")
    network.mark_output(out)
    data = np.array([-1.0, 0.5, 2.0, -3.0], np.float32)
    context = build_engine_for_feeds(network, {"c": np.array(True), "x": data}).create_execution_context()
    np.testing.assert_allclose(context.execute({"c": np.array(True), "x": data})["y"],
                               np.exp(data.astype(np.float64)), rtol=1e-6)
    np.testing.assert_array_equal(context.execute({"c": np.array(False), "x": data})["y"], np.abs(data))


def test_if_conditional_api_refuses_branches_of_different_dtype_or_rank():
    network = trt.NetworkDefinition()
    x = network.add_input("x", trt.DataType.FLOAT, (2, 2))
    conditional = network.add_if_conditional("bad")
    conditional.set_condition(network.add_input("c", trt.DataType.BOOL, ()))
    views = conditional.add_input(x)
    as_int = conditional.else_branch.add_cast(views.else_tensor, trt.DataType.INT32).get_output(0)
    with pytest.raises(EngineError, match=r"conditional 'bad' output 0: .*dtype FLOAT.*dtype INT32"):
        conditional.add_output(views.then_tensor, as_int)
    flat = conditional.else_branch.add_shuffle(views.else_tensor)
    flat.reshape_dims = (4,)
    with pytest.raises(EngineError, match=r"conditional 'bad' output 0: .*rank 2.*rank 1"):
        conditional.add_output(views.then_tensor, flat.get_output(0))


def test_loop_api_refuses_a_loop_nothing_limits():
    network = trt.NetworkDefinition()
    x = network.add_input("x", trt.DataType.FLOAT, (2,))
    loop = network.add_loop("forever")
    rec = loop.add_recurrence(x)
    rec.set_input(1, loop.body.add_unary(rec.get_output(0), trt.UnaryOperation.NEG).get_output(0))
    network.mark_output(loop.add_loop_output(rec.get_output(0)).get_output(0))
    with pytest.raises(EngineError, match=r"loop 'forever': nothing limits the trip count"):
        build_engine_for_feeds(network, {"x": np.zeros(2, np.float32)})


# ------------------------------------------------------------------------------------------------ parse errors
def _parse_errors(model: onnx.ModelProto) -> str:
    parser = trt.OnnxParser(trt.NetworkDefinition(), trt.Logger(trt.Logger.INTERNAL_ERROR))
    assert not parser.parse_model(model)
    return parser.errors_text()


def _if_with_branch_outputs(then_vi, then_nodes, else_vi, else_nodes) -> onnx.ModelProto:
    then_g = helper.make_graph(then_nodes, "then", [], [then_vi])
    else_g = helper.make_graph(else_nodes, "else", [], [else_vi])
    node = helper.make_node("If", ["c"], ["out"], name="mismatched_if", then_branch=then_g, else_branch=else_g)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", TP.BOOL, []),
                                            helper.make_tensor_value_info("x", TP.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("out", TP.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_if_branches_of_different_dtype_are_refused_naming_the_node():
    model = _if_with_branch_outputs(
        helper.make_tensor_value_info("a", TP.FLOAT, [2, 3]), [helper.make_node("Relu", ["x"], ["a"])],
        helper.make_tensor_value_info("b", TP.INT32, [2, 3]), [helper.make_node("Cast", ["x"], ["b"], to=TP.INT32)])
    errors = _parse_errors(model)
    assert "node 'mismatched_if' (If)" in errors and "dtype FLOAT" in errors and "dtype INT32" in errors


def test_if_branches_of_different_rank_are_refused_naming_the_node():
    model = _if_with_branch_outputs(
        helper.make_tensor_value_info("a", TP.FLOAT, [2, 3]), [helper.make_node("Relu", ["x"], ["a"])],
        helper.make_tensor_value_info("b", TP.FLOAT, [3]),
        [helper.make_node("Constant", [], ["ax"], value=onnx.numpy_helper.from_array(np.array([0], np.int64))),
         helper.make_node("ReduceSum", ["x", "ax"], ["b"], keepdims=0)])
    errors = _parse_errors(model)
    assert "node 'mismatched_if' (If)" in errors and "rank 2" in errors and "rank 1" in errors


def test_loop_body_missing_an_input_is_refused_naming_the_node():
    model = loop_until_large()
    body = model.graph.node[0].attribute[0].g
    del body.input[1]  # the condition input
    errors = _parse_errors(model)
    assert "node 'grow' (Loop)" in errors and "the body has 2 inputs; it needs 3" in errors


def test_a_body_that_is_not_a_graph_is_refused_naming_the_node():
    model = loop_until_large()
    node = model.graph.node[0]
    del node.attribute[:]
    node.attribute.append(helper.make_attribute("body", 3))
    errors = _parse_errors(model)
    assert "node 'grow' (Loop)" in errors and "attribute 'body' must be a graph, got INT" in errors


def test_an_error_inside_a_branch_names_the_node_and_the_branch():
    model = if_on_input()
    model.graph.node[0].attribute[0].g.node[0].op_type = "NoSuchOp"
    errors = _parse_errors(model)
    assert "node 'choose' (If): else_branch: node 'NoSuchOp_0' (NoSuchOp): unsupported operator" in errors
    parser = trt.OnnxParser(trt.NetworkDefinition(), trt.Logger(trt.Logger.INTERNAL_ERROR))
    parser.parse_model(model)
    assert parser.get_error(0).category == UnsupportedCategory.OPERATOR  # what `inspect capability` reports


# ------------------------------------------------------------------------------------------------ plan checks
def _tampered(plan: bytes, edit) -> bytes:
    header, arrays = unpack(plan, MAGIC, FORMAT_VERSION, "plan")
    header = json.loads(json.dumps(header))
    header.pop("buffers", None)
    edit(header)
    return pack(MAGIC, FORMAT_VERSION, header, arrays)


def _conditional_plan() -> bytes:
    feeds = {"c": np.array(True), "x": np.ones((2, 3), np.float32), "y": np.ones((2, 3), np.float32)}
    return _engine(if_on_input(), feeds).serialize()


def test_plan_without_the_subgraphs_of_a_conditional_is_refused():
    def drop(header):
        next(layer for layer in header["layers"] if layer["type"] == "CONDITIONAL").pop("subgraphs")

    with pytest.raises(PlanFormatError, match=r"layer 'choose' subgraphs: only CONDITIONAL and LOOP layers have"):
        trt.Runtime().deserialize_cuda_engine(_tampered(_conditional_plan(), drop))


def test_plan_with_a_tampered_branch_layer_is_refused_naming_the_subgraph():
    def retype(header):
        branch = next(layer for layer in header["layers"] if layer["type"] == "CONDITIONAL")["subgraphs"]["then"]
        branch["tensors"][branch["layers"][0]["outputs"][0]]["dtype"] = "INT32"

    with pytest.raises(PlanFormatError, match=r"layer 'choose' then subgraph: layer '.*' \(ELEMENTWISE\) output"):
        trt.Runtime().deserialize_cuda_engine(_tampered(_conditional_plan(), retype))


def test_older_plan_format_is_refused():
    header, arrays = unpack(_conditional_plan(), MAGIC, FORMAT_VERSION, "plan")
    header.pop("buffers", None)
    with pytest.raises(PlanFormatError, match=f"format version {FORMAT_VERSION - 1} is not supported"):
        trt.Runtime().deserialize_cuda_engine(pack(MAGIC, FORMAT_VERSION - 1, header, arrays))


def test_loop_layer_type_is_in_the_built_engine():
    feeds = {"go": np.array(True), "x0": np.ones(3, np.float32), "limit": np.array(5.0, np.float32)}
    assert _layer_types(_engine(loop_until_large(), feeds)).count(LayerType.LOOP.value) == 1


def test_fp16_build_keeps_control_flow_layers_in_float32():
    """With FP16 the layers around a conditional run in HALF; the conditional and its branches keep FLOAT
    (reformats feed it), against float64 NumPy at float16 tolerance."""
    network = trt.NetworkDefinition()
    c = network.add_input("c", trt.DataType.BOOL, ())
    x = network.add_input("x", trt.DataType.FLOAT, (8,))
    relu = network.add_activation(x, trt.ActivationType.RELU).get_output(0)
    conditional = network.add_if_conditional("pick")
    conditional.set_condition(c)
    views = conditional.add_input(relu)
    then_out = conditional.then_branch.add_unary(views.then_tensor, trt.UnaryOperation.SQRT).get_output(0)
    chosen = conditional.add_output(then_out, views.else_tensor)
    network.mark_output(network.add_unary(chosen, trt.UnaryOperation.NEG).get_output(0))
    data = RNG.uniform(-2, 2, 8).astype(np.float32)
    engine = build_engine_for_feeds(network, {"c": np.array(True), "x": data}, fp16=True)
    rows = {row["type"]: row for row in engine.layer_info()}
    assert rows["CONDITIONAL"]["precision"] == "FLOAT" and rows["UNARY"]["precision"] == "HALF"
    context = engine.create_execution_context()
    relu64 = np.maximum(data.astype(np.float64), 0)
    for flag, want in ((True, -np.sqrt(relu64)), (False, -relu64)):
        (got,) = context.execute({"c": np.array(flag), "x": data}).values()
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-3)


def test_a_graph_input_declared_twice_is_a_parse_error():
    model = if_on_input()
    model.graph.input.append(model.graph.input[1])
    assert "input 'x': the graph declares this input twice" in _parse_errors(model)


def test_execute_async_v3_with_data_dependent_outputs_fills_buffers_of_the_right_shape():
    model = loop_until_large()
    feeds = {"go": np.array(True), "x0": np.array([0.5, 0.25, 1.0], np.float32), "limit": np.array(40.0, np.float32)}
    context = build_engine_for_feeds(parse_onnx(model), feeds, device="cpu").create_execution_context()  # NumPy IO
    assert context.get_tensor_shape("history") == (-1, 3)  # known only once it has run
    want = onnxruntime_outputs(model, feeds)
    for name, value in feeds.items():
        context.set_tensor_address(name, value)
    final, history = np.zeros(3, np.float32), np.zeros(want["history"].shape, np.float32)
    context.set_tensor_address("x_final", final)
    context.set_tensor_address("history", history)
    context.execute_async_v3(0)
    np.testing.assert_allclose(final, want["x_final"], rtol=1e-6)
    np.testing.assert_allclose(history, want["history"], rtol=1e-6)
    context.set_tensor_address("history", np.zeros((9, 3), np.float32))
    with pytest.raises(trt.ExecutionError, match=r"output 'history': this run made shape \(4, 3\).*buffer has "
                                                 r"shape \(9, 3\)"):
        context.execute_async_v3(0)


def test_a_constant_if_inside_a_loop_body_is_folded_in_the_body():
    """The body's If reads `flip` (a body initializer, True): the plan's body has the Add and no CONDITIONAL."""
    model = loop_with_nested_if()
    body = model.graph.node[0].attribute[0].g
    if_node = next(node for node in body.node if node.op_type == "If")
    if_node.input[0] = "flip"
    body.initializer.append(onnx.numpy_helper.from_array(np.array(True), "flip"))
    feeds = {"acc0": RNG.standard_normal((2, 2)).astype(np.float32),
             "w": RNG.standard_normal((2, 2)).astype(np.float32)}
    engine = _engine(model, feeds)
    assert engine.meta["passes"]["constant_conditions_folded"] == 1
    header, _ = unpack(engine.serialize(), MAGIC, FORMAT_VERSION, "plan")
    loop = next(layer for layer in header["layers"] if layer["type"] == "LOOP")
    body_types = [layer["type"] for layer in loop["subgraphs"]["body"]["layers"]]
    assert "CONDITIONAL" not in body_types and "ELEMENTWISE" in body_types
    want = onnxruntime_outputs(model, feeds)
    np.testing.assert_allclose(want["acc"], feeds["acc0"] + 4 * feeds["w"].astype(np.float64), rtol=1e-5)
    _assert_matches(_reloaded(engine).create_execution_context().execute(feeds), want)


def test_a_condition_known_at_parse_time_imports_only_the_branch_that_runs():
    """The else-branch holds an op with no importer; the condition (1.0 > 0) is known, so it is never imported."""
    model = if_on_constant(True)
    if_node = model.graph.node[1]
    else_graph = next(a.g for a in if_node.attribute if a.name == "else_branch")
    else_graph.node[0].op_type = "NoSuchOp"
    feeds = {"x": np.array([-1.0, 0.5, 2.0, -3.0], np.float32)}
    engine = _engine(model, feeds)
    assert "CONDITIONAL" not in _layer_types(engine)
    np.testing.assert_array_equal(engine.create_execution_context().execute(feeds)["out"],
                                  np.maximum(feeds["x"], 0) * 2)


def test_if_whose_branches_differ_in_shape_runs_with_the_shape_of_the_branch_taken():
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["r"])], "then", [],
                               [helper.make_tensor_value_info("r", TP.FLOAT, [2, 3])])
    else_g = helper.make_graph([helper.make_node("Concat", ["x", "x"], ["twice"], axis=0)], "else", [],
                               [helper.make_tensor_value_info("twice", TP.FLOAT, [4, 3])])
    node = helper.make_node("If", ["c"], ["out"], name="grow_or_not", then_branch=then_g, else_branch=else_g)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", TP.BOOL, []),
                                            helper.make_tensor_value_info("x", TP.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("out", TP.FLOAT, [None, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    engine = _engine(model, {"c": np.array(True), "x": x})
    assert engine.get_tensor_shape("out") == (-1, 3)
    context = _reloaded(engine).create_execution_context()
    for flag in (True, False):
        feeds = {"c": np.array(flag), "x": x}
        _assert_matches(context.execute(feeds), onnxruntime_outputs(model, feeds))


def test_a_body_layer_reading_an_outer_tensor_directly_is_a_build_error_naming_the_loop():
    network = trt.NetworkDefinition()
    x = network.add_input("x", trt.DataType.FLOAT, (2,))
    loop = network.add_loop("careless")
    loop.add_trip_limit(network.add_constant((), np.array(2, np.int64)).get_output(0), TripLimit.COUNT)
    rec = loop.add_recurrence(x)
    rec.set_input(1, loop.body.add_elementwise(rec.get_output(0), x, trt.ElementWiseOperation.SUM).get_output(0))
    network.mark_output(loop.add_loop_output(rec.get_output(0)).get_output(0))
    with pytest.raises(trt.BuildError, match=r"layer 'careless' body subgraph: .*'x'.*only through the "
                                             r"conditional's or loop's add_input"):
        build_engine_for_feeds(network, {"x": np.zeros(2, np.float32)})


def test_plan_with_a_buffer_of_no_graph_is_refused():
    header, arrays = unpack(_conditional_plan(), MAGIC, FORMAT_VERSION, "plan")
    header.pop("buffers", None)
    arrays["0.body/const0"] = np.zeros(2, np.float32)  # layer 0 is not a loop
    with pytest.raises(PlanFormatError, match=r"buffer '0.body/const0': belongs to no graph of the plan"):
        trt.Runtime().deserialize_cuda_engine(pack(MAGIC, FORMAT_VERSION, header, arrays))


@pytest.mark.parametrize("layer_type", [LayerType.CONDITIONAL, LayerType.LOOP])
def test_gpu_control_flow_tactics_declare_they_cannot_be_captured(layer_type):
    from engine.tactics import tactics_for

    assert [t.capturable for t in tactics_for(layer_type, "gpu")] == [False]
    assert all(t.capturable for t in tactics_for(layer_type, "cpu"))
