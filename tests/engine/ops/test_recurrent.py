"""RNN_V2 layer; ONNX LSTM, GRU and RNN against onnxruntime (and ONNX's backend cases): every direction,
sequence_lens, initial states, peepholes, layout 1, clip, input_forget, linear_before_reset, activations; float16;
the plan; the errors. GPU tests (marked gpu) run the GEMM-per-step tactic against the NumPy path and onnxruntime;
tests that do not name a device run on the GPU where there is one."""
from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from backend_cases import cases_for, run_case
from onnx import helper, numpy_helper
from onnx_node_check import run_ort
from recurrent_models import DIRECTIONS, GATES, OUTPUTS, recurrent_model

from engine import DataType, ExecutionError, NetworkDefinition, PlanFormatError, RNNDirection, RNNOperation
from engine.conformance.harness import build_engine_for_feeds, parse_onnx, run_onnx
from engine.enums import LayerType
from engine.errors import UnsupportedCategory
from engine.onnx_parser import OnnxParser
from engine.plan import deserialize_plan
from engine.runtime import Runtime


def assert_outputs(actual: dict, expected: list, names: list[str], rtol: float = 1e-5, atol: float = 1e-5):
    for name, want in zip(names, expected):
        got = actual[name]
        assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=name)


def check_against_ort(model: onnx.ModelProto, feeds: dict, **build_options) -> dict:
    actual = run_onnx(model, feeds, **build_options)
    assert_outputs(actual, run_ort(model, feeds), [o.name for o in model.graph.output])
    return actual


@pytest.mark.parametrize("case", cases_for({"LSTM", "GRU", "RNN"}), ids=lambda c: c.name)
def test_backend_cases(case):
    run_case(case)


@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("op", list(GATES))
def test_directions_with_sequence_lens_and_initial_states(op, direction):
    model, feeds = recurrent_model(op, direction=direction, lengths=[5, 2, 4], initial=True, peepholes=True)
    actual = check_against_ort(model, feeds)
    y = actual["Y"]
    assert np.all(y[2:, :, 1] == 0) and np.all(y[4:, :, 2] == 0) and np.any(y[:2, :, 1] != 0)


@pytest.mark.parametrize("op", list(GATES))
def test_layout_1_matches_onnxruntime_on_the_transposed_model(op):
    """onnxruntime refuses layout 1, so its layout-0 results on transposed inputs are the reference."""
    model, feeds = recurrent_model(op, direction="bidirectional", layout=1, lengths=[4, 5, 1], initial=True,
                                   peepholes=True)
    actual = run_onnx(model, feeds)
    seq_first, _ = recurrent_model(op, direction="bidirectional", layout=0, lengths=[4, 5, 1], initial=True,
                                   peepholes=True)
    transposed = {"X": feeds["X"].transpose(1, 0, 2), "sequence_lens": feeds["sequence_lens"]}
    transposed.update({k: feeds[k].transpose(1, 0, 2) for k in ("initial_h", "initial_c") if k in feeds})
    expected = run_ort(seq_first, transposed)
    assert_outputs(actual, [expected[0].transpose(2, 0, 1, 3)] + [e.transpose(1, 0, 2) for e in expected[1:]],
                   OUTPUTS[op])


@pytest.mark.parametrize("op,attrs", [
    ("LSTM", {"clip": 0.4}),
    ("LSTM", {"input_forget": 1}),
    ("GRU", {"linear_before_reset": 1}),
    ("GRU", {"linear_before_reset": 1, "clip": 0.3}),
    ("GRU", {"clip": 0.3}),
    ("RNN", {"clip": 0.5}),
], ids=lambda v: str(v))
def test_cell_options(op, attrs):
    model, feeds = recurrent_model(op, direction="bidirectional", lengths=[3, 5, 1], initial=True, peepholes=True,
                                   **attrs)
    check_against_ort(model, feeds)


@pytest.mark.parametrize("op,activations,alphas,betas", [
    ("RNN", ["Relu"], [], []),
    ("RNN", ["LeakyRelu"], [], []),
    ("RNN", ["Elu"], [0.7], []),
    ("RNN", ["Softsign"], [], []),
    ("RNN", ["Softplus"], [], []),
    ("RNN", ["ThresholdedRelu"], [0.2], []),
    ("RNN", ["ScaledTanh"], [1.3], [0.6]),
    ("GRU", ["HardSigmoid", "Softsign"], [0.25], [0.45]),
    ("LSTM", ["HardSigmoid", "LeakyRelu", "Elu", "Sigmoid", "ScaledTanh", "Tanh"], [0.3, 0.05, 0.9, 1.5], [0.6, 0.8]),
], ids=lambda v: str(v))
def test_activations(op, activations, alphas, betas):
    attrs = {"activations": activations}
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    per_direction = {"LSTM": 3, "GRU": 2, "RNN": 1}[op]
    direction = "bidirectional" if len(activations) == 2 * per_direction else "forward"
    model, feeds = recurrent_model(op, direction=direction, initial=True, **attrs)
    check_against_ort(model, feeds)


def test_thresholded_relu_takes_the_onnx_default_alpha():
    """ONNX: an activation without activation_alpha takes its operator's default (ThresholdedRelu: 1.0);
    onnxruntime uses 0 there, so the reference is a hand computation: W = 1, R = 0, no bias, one step: h = f(x)."""
    model, feeds = recurrent_model("RNN", seq=1, batch=5, size=1, hidden=1, bias=False,
                                   activations=["ThresholdedRelu"])
    for init in model.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(np.full((1, 1, 1), init.name == "W", np.float32), init.name))
    feeds["X"] = np.array([-1.0, 0.5, 1.0, 1.5, 3.0], np.float32).reshape(1, 5, 1)
    np.testing.assert_array_equal(run_onnx(model, feeds)["Y_h"].ravel(), [0, 0, 0, 1.5, 3.0])


def test_zero_length_sequences_end_in_a_zero_state_as_in_onnxruntime():
    model, feeds = recurrent_model("LSTM", seq=4, direction="bidirectional", lengths=[4, 0, 2], initial=True)
    actual = check_against_ort(model, feeds)
    assert np.all(actual["Y_h"][:, 1] == 0) and np.all(actual["Y"][:, :, 1] == 0)


def test_float16_model_computes_in_float32():
    model, feeds = recurrent_model("LSTM", direction="bidirectional", lengths=[5, 3, 1], initial=True,
                                   peepholes=True, dtype=np.float16)
    wide_model, _ = recurrent_model("LSTM", direction="bidirectional", lengths=[5, 3, 1], initial=True,
                                    peepholes=True, dtype=np.float32)
    # the float32 model's weights are the float16 ones, widened: the same function
    for init, wide in zip(model.graph.initializer, wide_model.graph.initializer):
        wide.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
    expected = run_ort(wide_model, {k: v.astype(np.float32) if v.dtype == np.float16 else v
                                    for k, v in feeds.items()})
    actual = run_onnx(model, feeds)
    for name, want in zip(OUTPUTS["LSTM"], expected):
        assert actual[name].dtype == np.float16
        # float16 storage of the outputs: one rounding (2**-11 relative), no error growth over the steps
        np.testing.assert_allclose(actual[name].astype(np.float32), want, rtol=2e-3, atol=2e-3, err_msg=name)


@pytest.mark.parametrize("op", list(GATES))
def test_float64_model_computes_in_float64(op):
    """onnxruntime has no float64 recurrent kernels: its float32 run of the same (float32-exact) data is the
    reference, at float32 accuracy."""
    model, feeds = recurrent_model(op, direction="bidirectional", lengths=[5, 2, 3], initial=True, dtype=np.float64)
    narrow, _ = recurrent_model(op, direction="bidirectional", lengths=[5, 2, 3], initial=True, dtype=np.float32)
    for init, target in zip(model.graph.initializer, narrow.graph.initializer):
        target.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
    feeds = {k: v.astype(np.float32).astype(v.dtype) for k, v in feeds.items()}
    for init in model.graph.initializer:  # float32-exact weights, so both models compute the same function
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32).astype(np.float64),
                                              init.name))
    expected = run_ort(narrow, {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in feeds.items()})
    actual = run_onnx(model, feeds)
    for name, want in zip(OUTPUTS[op], expected):
        assert actual[name].dtype == np.float64
        np.testing.assert_allclose(actual[name], want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_fp16_build_of_a_float32_model():
    model, feeds = recurrent_model("GRU", direction="bidirectional", lengths=[5, 3, 2], initial=True, seed=3)
    expected = run_ort(model, feeds)
    actual = run_onnx(model, feeds, fp16=True)
    for name, want in zip(OUTPUTS["GRU"], expected):
        np.testing.assert_allclose(actual[name], want, rtol=1e-2, atol=1e-2, err_msg=name)


def test_network_api_builds_the_layer_from_arrays():
    """add_rnn_v2 with NumPy weights (Constant layers, hence plan buffers) computes what the ONNX node does."""
    model, feeds = recurrent_model("GRU", direction="reverse", lengths=[2, 5, 3], initial=True, seed=5,
                                   linear_before_reset=1)
    weights = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    network = NetworkDefinition()
    x = network.add_input("X", DataType.FLOAT, feeds["X"].shape)
    lengths = network.add_input("sequence_lens", DataType.INT32, (3,))
    h0 = network.add_input("initial_h", DataType.FLOAT, feeds["initial_h"].shape)
    layer = network.add_rnn_v2(x, RNNOperation.GRU, 6, weights["W"], weights["R"], weights["B"],
                               direction=RNNDirection.REVERSE, sequence_lens=lengths, initial_h=h0, name="gru")
    layer.linear_before_reset = True
    assert layer.type == LayerType.RNN_V2 and layer.num_outputs == 2
    assert layer.get_output(0).shape == (5, 1, 3, 6) and layer.get_output(1).shape == (1, 3, 6)
    for tensor, name in zip(layer.outputs, ("Y", "Y_h")):
        network.rename_tensor(tensor, name)
        network.mark_output(tensor)
    engine = build_engine_for_feeds(network, feeds)
    actual = engine.create_execution_context().execute(feeds)
    assert_outputs(actual, run_ort(model, feeds), ["Y", "Y_h"])


def _plan_bytes(model, feeds) -> bytes:
    return build_engine_for_feeds(parse_onnx(model), feeds).serialize()


def test_plan_keeps_weights_as_buffers_and_round_trips():
    model, feeds = recurrent_model("LSTM", direction="bidirectional", lengths=[5, 2, 3], initial=True,
                                   peepholes=True)
    data = _plan_bytes(model, feeds)
    graph, _ = deserialize_plan(data)
    (layer,) = [spec for spec in graph.layers if spec.layer.type == LayerType.RNN_V2]
    weights = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for position, name in ((1, "W"), (2, "R"), (3, "B"), (7, "P")):
        np.testing.assert_array_equal(graph.constants[layer.inputs[position]], weights[name])
    context = Runtime().deserialize_cuda_engine(data).create_execution_context()
    assert_outputs(context.execute(feeds), run_ort(model, feeds), OUTPUTS["LSTM"])


@pytest.mark.parametrize("field,value,message", [
    ("direction", "SIDEWAYS", "params.direction"),
    ("op", "CONV", "params.op"),
    ("hidden_size", 7, "input W has shape"),
    ("activations", ["SIGMOID", "MISH", "TANH"], "MISH"),
    ("layout", 2, "layout must be 0"),
])
def test_tampered_plan_params_are_refused(field, value, message):
    import json

    from engine.container import pack, unpack
    from engine.plan import FORMAT_VERSION, MAGIC

    model, feeds = recurrent_model("LSTM", lengths=[5, 2, 3])
    header, arrays = unpack(_plan_bytes(model, feeds), MAGIC, FORMAT_VERSION, "plan")
    header = json.loads(json.dumps(header))
    (entry,) = [layer for layer in header["layers"] if layer["type"] == "RNN_V2"]
    entry["params"][field] = value
    with pytest.raises(PlanFormatError, match=message):
        deserialize_plan(pack(MAGIC, FORMAT_VERSION, header, arrays))


# ---------------------------------------------------------------------------------------------------- errors


def _parse_errors(model) -> list:
    parser = OnnxParser(NetworkDefinition())
    assert not parser.parse_model(model)
    return [parser.get_error(i) for i in range(parser.num_errors)]


@pytest.mark.parametrize("activations,category,message", [
    (["Affine"], UnsupportedCategory.ATTRIBUTE, r"attribute 'activations' \[0\] is 'Affine'.*no affine"),
    (["Gelu"], UnsupportedCategory.ATTRIBUTE, r"attribute 'activations' \[0\] is 'Gelu'.*not a supported"),
    (["ScaledTanh"], UnsupportedCategory.ATTRIBUTE, r"'activation_alpha' gives no value for activations\[0\]"),
    (["Tanh", "Tanh"], UnsupportedCategory.OTHER, r"'activations' lists 2 functions.*needs 1"),
])
def test_unsupported_activations_name_the_node_and_attribute(activations, category, message):
    model, _ = recurrent_model("RNN", activations=activations)
    (error,) = _parse_errors(model)
    assert error.node == "rnn_node" and error.op == "RNN" and error.category == category
    assert "node 'rnn_node' (RNN)" in error.desc
    assert re.search(message, error.desc), error.desc


def _set_attribute(model, name, value):
    node = model.graph.node[0]
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept + [helper.make_attribute(name, value)])


def _with_lengths_input(model, elem_type, dims):
    graph = model.graph
    for value in graph.input:
        if value.name == "sequence_lens":
            value.CopyFrom(helper.make_tensor_value_info("sequence_lens", elem_type, dims))
    return model


@pytest.mark.parametrize("elem_type,dims,message", [
    (onnx.TensorProto.INT64, [3], "sequence_lens .* has data type INT64; ONNX requires INT32"),
    (onnx.TensorProto.FLOAT, [3], "sequence_lens .* has data type FLOAT"),
    (onnx.TensorProto.INT32, [3, 1], r"sequence_lens .* has shape \[3, 1\]; expected \[batch\]"),
    (onnx.TensorProto.INT32, [4], r"sequence_lens has shape \[4\]; expected \[batch=3\]"),
])
def test_bad_sequence_lens_is_a_parse_error(elem_type, dims, message):
    model, _ = recurrent_model("GRU", lengths=[1, 2, 3])
    (error,) = _parse_errors(_with_lengths_input(model, elem_type, dims))
    assert error.node == "gru_node"
    assert re.search(message, error.desc), error.desc


def test_hidden_size_that_disagrees_with_w_is_a_parse_error():
    model, _ = recurrent_model("LSTM", hidden=6)
    _set_attribute(model, "hidden_size", 5)
    (error,) = _parse_errors(model)
    assert error.node == "lstm_node"
    assert "input W has shape [1, 24, 4]; expected [num_directions=1, 4*hidden_size=20, input_size=4] " \
           "(hidden_size 5" in error.desc


@pytest.mark.parametrize("attrs,message", [
    ({"direction": "sideways"}, "attribute 'direction' is 'sideways'"),
    ({"clip": -1.0}, "attribute 'clip' is -1.0; it must be positive"),
    ({"layout": 2}, "attribute 'layout' is 2"),
])
def test_bad_attributes_are_parse_errors(attrs, message):
    model, _ = recurrent_model("LSTM")
    for name, value in attrs.items():
        _set_attribute(model, name, value)
    (error,) = _parse_errors(model)
    assert error.node == "lstm_node" and message in error.desc, error.desc


def test_bidirectional_weights_with_one_direction_are_a_parse_error():
    model, _ = recurrent_model("RNN", direction="bidirectional")
    _set_attribute(model, "direction", "forward")
    (error,) = _parse_errors(model)
    assert "input W has shape [2, 6, 4]; expected [num_directions=1" in error.desc


def test_sequence_lens_is_an_ordinary_input_whose_values_change_per_execution():
    model, feeds = recurrent_model("LSTM", direction="bidirectional", lengths=[5, 2, 4], initial=True)
    engine = build_engine_for_feeds(parse_onnx(model), feeds)
    assert [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)][:2] == ["X", "sequence_lens"]
    context = engine.create_execution_context()
    for lengths in ([5, 2, 4], [1, 5, 3], [0, 0, 5]):
        feeds["sequence_lens"] = np.array(lengths, np.int32)
        assert_outputs(context.execute(feeds), run_ort(model, feeds), OUTPUTS["LSTM"])


def test_sequence_length_past_the_sequence_is_an_execution_error():
    model, feeds = recurrent_model("RNN", lengths=[1, 2, 3])
    engine = build_engine_for_feeds(parse_onnx(model), feeds, device="cpu")  # the GPU tactic clamps instead
    feeds["sequence_lens"] = np.array([1, 9, 3], np.int32)
    context = engine.create_execution_context()
    with pytest.raises(ExecutionError, match=r"layer 'rnn_node'.*sequence_lens holds 9; every length must be in "
                                             r"0\.\.5"):
        context.execute(feeds)


# ---------------------------------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.parametrize("op,attrs", [
    ("LSTM", {"peepholes": True}), ("LSTM", {"clip": 0.4, "input_forget": 1}),
    ("GRU", {}), ("GRU", {"linear_before_reset": 1}), ("RNN", {"activations": ["Relu", "Softsign"]}),
], ids=lambda v: str(v))
@pytest.mark.parametrize("layout", [0, 1])
def test_gpu_gemm_steps_match_the_numpy_path_and_capture_a_cuda_graph(op, attrs, layout):
    model, feeds = recurrent_model(op, direction="bidirectional", layout=layout, lengths=[5, 0, 3], initial=True,
                                   **attrs)
    engine = build_engine_for_feeds(parse_onnx(model), feeds, device="gpu")
    rows = [r for r in engine.layer_info() if r["type"] == "RNN_V2"]
    assert [r["tactic"] for r in rows] == ["gpu:rnn_v2:gemm_steps"]
    context = engine.create_execution_context()
    context.use_cuda_graph = True
    actual = context.execute(feeds)
    assert context.cuda_graph_captures == 1
    reference = run_onnx(model, feeds, device="cpu")  # the NumPy path, itself checked against onnxruntime
    for name in OUTPUTS[op]:
        np.testing.assert_allclose(actual[name], reference[name], rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.gpu
def test_gpu_float16_layer_keeps_float32_state():
    model, feeds = recurrent_model("LSTM", seq=32, direction="bidirectional", lengths=[32, 7, 20], initial=True,
                                   peepholes=True)
    expected = run_ort(model, feeds)
    actual = run_onnx(model, feeds, device="gpu", fp16=True)
    for name, want in zip(OUTPUTS["LSTM"], expected):
        np.testing.assert_allclose(actual[name], want, rtol=2e-2, atol=2e-2, err_msg=name)
