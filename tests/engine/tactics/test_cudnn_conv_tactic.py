"""The cuDNN convolution tactics without a GPU: unavailability is a reason (supports) or a PlanFormatError naming the
layer (a loaded plan), never a crash; one stable tactic id per cuDNN engine; and, through a stand-in for the
`cudnn` module that records what it is told, the graph each layer becomes (shapes, strides, window, epilogue
order, numerical notes) and which engines become candidates or are refused with the reason."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from conv_reference import conv_float64
from cudnn_stand_in import FakeTensor, StandInGraph, operand_memory

import engine as trt
from engine.backends import cudnn_conv, cudnn_frontend
from engine.dtypes import DataType, from_numpy
from engine.enums import ActivationType, LayerType, TacticSource, allowed_by_sources
from engine.ir import Activation, Epilogue, Node
from engine.ir.epilogue import NO_EPILOGUE
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext, tactic_by_id, tactics_for
from engine.tactics.base import stable_tactic_id
from engine.tactics.gpu_cudnn_conv import CudnnConv, fused_activation


def cudnn_tactics() -> list:
    return [t for t in tactics_for(LayerType.CONVOLUTION, "gpu") if t.source == TacticSource.CUDNN]


def conv_context(x_shape, maps, groups, kernel, stride, dilation, pre, post, bias=True,
                 epilogue=NO_EPILOGUE, dtype=DataType.FLOAT) -> TacticContext:
    w = np.zeros((maps, x_shape[1] // groups, *kernel), np.float32)
    b = np.zeros(maps, np.float32) if bias else None
    net = NetworkDefinition()
    layer = net.add_convolution_nd(net.add_input("x", dtype, x_shape), maps, kernel, w, b)
    layer.stride_nd, layer.dilation_nd, layer.num_groups = list(stride), list(dilation), groups
    layer.pre_padding, layer.post_padding = list(pre), list(post)
    node = Node(layer.type, "conv7", layer.params, precision=layer.precision, epilogue=epilogue)
    y_shape = layer.get_output(0).shape
    inputs = [TensorInfo(x_shape, dtype), TensorInfo(w.shape, dtype, w),
              TensorInfo(b.shape, dtype, b) if bias else None]
    if epilogue.residual is not None:
        inputs.append(TensorInfo(y_shape, dtype))
    return TacticContext(node, inputs, [TensorInfo(y_shape, dtype)], "gpu")


def test_without_the_frontend_supports_says_why_and_prepare_names_the_layer(no_cudnn):
    ctx = conv_context((1, 4, 6, 6), 4, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1))
    tactic = cudnn_tactics()[0]
    reason = tactic.supports(ctx)
    assert reason.startswith("the cuDNN frontend (nvidia-cudnn-frontend) cannot be imported: ModuleNotFoundError"), \
        reason
    assert tactic.workspace_bytes(ctx) == 0
    with pytest.raises(trt.PlanFormatError, match=r"layer 'conv7' runs on cuDNN \(tactic gpu:conv:cudnn_engine0\), "
                                                  r"which is not usable here: the cuDNN frontend"):
        tactic.prepare(ctx)


def test_one_tactic_per_cudnn_engine_with_a_stable_id_and_the_cudnn_source():
    tactics = cudnn_tactics()
    assert [t.engine_id for t in tactics] == list(range(cudnn_frontend.MAX_ENGINE_ID))
    for t in tactics:
        assert t.name == f"gpu:conv:cudnn_engine{t.engine_id}"
        assert t.id == stable_tactic_id(t.name) and tactic_by_id(t.id) is t
        assert t.capturable and t.absorbs == {"residual", "activation"}
    all_ids = [t.id for layer in LayerType for backend in ("cpu", "gpu") for t in tactics_for(layer, backend)]
    assert len(all_ids) == len(set(all_ids))


def test_tactic_sources_select_and_deselect_the_cudnn_tactics():
    from polyx.cli.build_options import parse_tactic_sources

    (tactic, *_) = cudnn_tactics()
    (cublas,) = [t for t in tactics_for(LayerType.CONVOLUTION, "gpu") if t.name == "gpu:conv:im2col_gemm"]
    only = parse_tactic_sources(["cuDNN"])
    assert only == ["CUDNN"]
    mask = sum(1 << int(TacticSource[name]) for name in only)
    assert allowed_by_sources(tactic, mask) and not allowed_by_sources(cublas, mask)
    without = sum(1 << int(s) for s in TacticSource if s != TacticSource.CUDNN)
    assert not allowed_by_sources(tactic, without) and allowed_by_sources(cublas, without)


def test_activations_cudnn_expresses_and_those_left_to_the_epilogue_helper():
    assert fused_activation(Activation(ActivationType.RELU)) == ("relu", ())
    assert fused_activation(Activation(ActivationType.LEAKY_RELU, 0.2)) == ("relu", (("negative_slope", 0.2),))
    assert fused_activation(Activation(ActivationType.CLIP, 0.0, 6.0)) == \
        ("relu", (("lower_clip", 0.0), ("upper_clip", 6.0)))
    assert fused_activation(Activation(ActivationType.CLIP, float("-inf"), 6.0)) is None
    assert fused_activation(Activation(ActivationType.GELU_ERF)) == ("gelu", ())
    assert fused_activation(Activation(ActivationType.ELU, 1.0)) is None
    assert fused_activation(None) is None


# ------------------------------------------------------------------------------------- a stand-in frontend
class FakeGraph(StandInGraph):
    """A convolution graph: records its ops in order; check_support also refuses a graph holding one of
    `REFUSED_OPS` (cuDNN 9's NCHW fusions)."""

    RANKING: list = []
    FAILING: set = set()
    REFUSED = False
    REFUSED_OPS: set = set()
    made: list = []

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.ops, self.notes = [], []

    def _op(self, op, *operands, **params):
        self.ops.append((op, [t.name for t in operands], params))
        self.output = FakeTensor(f"{op}_out")
        return self.output

    def conv_fprop(self, image, weight, **params):
        return self._op("conv_fprop", image, weight, **params)

    def bias(self, input, bias, name):
        return self._op("bias", input, bias)

    def add(self, a, b, name):
        return self._op("add", a, b)

    def relu(self, input, name, **params):
        return self._op("relu", input, **params)

    def deselect_numeric_notes(self, notes):
        self.notes.extend(notes)

    def check_support(self):
        super().check_support()
        if self.REFUSED_OPS & {op for op, _, _ in self.ops}:
            raise RuntimeError("no engine supports the graph")

    def create_execution_plan(self, engine_id, knobs):
        self.plans.append((engine_id, knobs))

    def get_workspace_size_plan_at_index(self, index):
        return 1000 + index

    def execute_plan_at_index(self, pack, workspace, index, handle):
        """What cuDNN does with the variant pack: read each operand at its address as the graph declared it, run
        the ops in order (the convolution by the float64 reference), write Y at its address."""
        assert index in self.built and workspace != 0
        address = {tensor.name: pointer for tensor, pointer in pack.items()}

        def memory(tensor):
            return operand_memory(tensor, address[tensor.name])

        (_, _, conv), *epilogue = self.ops
        x, w = memory(self.tensors["X"]), memory(self.tensors["W"])
        y = conv_float64(x, w, None, conv["stride"], conv["dilation"], conv["pre_padding"], conv["post_padding"],
                         x.shape[1] // w.shape[1])
        for op, operands, params in epilogue:
            if op in ("bias", "add"):
                y = y + memory(self.tensors[operands[1]])
            else:
                assert op == "relu" and set(params) == {"negative_slope"}, (op, params)
                y = np.where(y >= 0, y, params["negative_slope"] * y)
        memory(self.output)[...] = y


@pytest.fixture
def fake_cudnn(monkeypatch, host_addresses):
    module = types.ModuleType("cudnn")
    module.data_type = types.SimpleNamespace(FLOAT="FLOAT", HALF="HALF")
    module.heur_mode = types.SimpleNamespace(A="A", FALLBACK="FALLBACK")
    module.numerical_note = types.SimpleNamespace(**{name: name for name in (  # FFT and WINOGRAD left out
        "TENSOR_CORE", "DOWN_CONVERT_INPUTS", "REDUCED_PRECISION_REDUCTION", "NONDETERMINISTIC", "WINOGRAD_TILE_4x4",
        "WINOGRAD_TILE_6x6", "WINOGRAD_TILE_13x13")})
    module.pygraph = FakeGraph
    module.backend_version = lambda: 91900
    module.backend_version_string = lambda: "9.19.0"
    module.set_stream = lambda handle, stream: None
    monkeypatch.setitem(sys.modules, "cudnn", module)
    monkeypatch.setattr(cudnn_conv, "thread_handle", lambda: "handle")
    monkeypatch.setattr(FakeGraph, "made", [])
    cudnn_frontend._probe.cache_clear()
    cudnn_conv.CONV_GRAPHS.clear()
    yield module
    cudnn_frontend._probe.cache_clear()
    cudnn_conv.CONV_GRAPHS.clear()


def test_a_grouped_strided_dilated_conv_with_its_epilogue_is_one_graph(fake_cudnn, monkeypatch):
    monkeypatch.setattr(FakeGraph, "RANKING", [(5, {})])
    epilogue = Epilogue(residual=3, activation=Activation(ActivationType.LEAKY_RELU, 0.1))
    ctx = conv_context((2, 4, 9, 8), 6, 2, (3, 3), (2, 1), (1, 2), (1, 0), (2, 1), epilogue=epilogue)
    assert tactic_by_id(stable_tactic_id("gpu:conv:cudnn_engine5")).supports(ctx) is True
    (graph,) = FakeGraph.made
    assert graph.kwargs["compute_data_type"] == "FLOAT" and graph.kwargs["intermediate_data_type"] == "FLOAT"
    x, w, b, r = (graph.tensors[n] for n in "XWBR")
    assert (x.dim, x.stride) == ([2, 4, 9, 8], [288, 72, 8, 1])
    assert (w.dim, w.stride) == ([6, 2, 3, 3], [18, 9, 3, 1])  # 2 groups: 2 input channels per group
    assert (b.dim, b.stride) == ([1, 6, 1, 1], [6, 1, 1, 1])
    # out = (in + pre + post - dilation*(k-1) - 1) // stride + 1: (9+1+2-2-1)//2+1 = 5, (8+0+1-4-1)//1+1 = 5
    assert (r.dim, r.stride) == ([2, 6, 5, 5], [150, 25, 5, 1])
    # the last windows of rows end at 1 + 9 + 1 (stride 2): one row of the 2 of bottom padding is ever read
    assert graph.ops == [
        ("conv_fprop", ["X", "W"], {"pre_padding": [1, 0], "post_padding": [1, 1], "stride": [2, 1],
                                    "dilation": [1, 2], "compute_data_type": "FLOAT", "name": "conv"}),
        ("bias", ["conv_fprop_out", "B"], {}), ("add", ["bias_out", "R"], {}),
        ("relu", ["add_out"], {"negative_slope": 0.1})]
    assert graph.output.output and graph.output.data_type == "FLOAT" and graph.output.dim == [2, 6, 5, 5]
    assert graph.modes == ["A", "FALLBACK"]
    # FP32 stays IEEE: no TF32 tensor cores, no Winograd transforms (notes this cuDNN lacks are skipped)
    assert graph.notes == ["TENSOR_CORE", "DOWN_CONVERT_INPUTS", "WINOGRAD_TILE_4x4", "WINOGRAD_TILE_6x6",
                           "WINOGRAD_TILE_13x13"]


def test_a_1d_fp16_conv_is_a_height_1_conv_accumulating_in_fp32(fake_cudnn, monkeypatch):
    monkeypatch.setattr(FakeGraph, "RANKING", [(2, {})])
    ctx = conv_context((3, 2, 10), 4, 1, (3,), (2,), (1,), (1,), (0,), bias=False, dtype=DataType.HALF)
    assert tactic_by_id(stable_tactic_id("gpu:conv:cudnn_engine2")).supports(ctx) is True
    (graph,) = FakeGraph.made
    assert graph.kwargs["io_data_type"] == "HALF" and graph.kwargs["compute_data_type"] == "FLOAT"
    assert graph.tensors["X"].data_type == "HALF" and graph.output.data_type == "HALF"
    assert graph.notes == ["REDUCED_PRECISION_REDUCTION"]
    assert graph.tensors["X"].dim == [3, 2, 1, 10] and graph.tensors["W"].dim == [4, 2, 1, 3]
    assert graph.ops[0][2]["pre_padding"] == [0, 1] and graph.ops[0][2]["stride"] == [1, 2]
    assert "B" not in graph.tensors and graph.output.dim == [3, 4, 1, 5]  # (10+1+0-2-1)//2+1 = 5


def test_candidates_are_the_first_engines_that_build_and_others_say_why(fake_cudnn, monkeypatch):
    ranking = [(3, {"k": 1}), (-1, {}), (3, {"k": 2}), (20_801, {}), (7, {}), (9, {}), (11, {}), (12, {}), (15, {})]
    monkeypatch.setattr(FakeGraph, "RANKING", ranking)
    monkeypatch.setattr(FakeGraph, "FAILING", {9})
    ctx = conv_context((1, 4, 6, 6), 8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1))
    by_engine = {t.engine_id: t for t in cudnn_tactics()}
    assert [e for e in (3, 7, 9, 11, 12, 15) if by_engine[e].supports(ctx) is True] == [3, 7, 11, 12]
    reason = by_engine[15].supports(ctx)
    assert reason == ("this cuDNN engine is not among the engines ranked first for this layer that build "
                      "([3, 7, 11, 12])")
    assert by_engine[7].workspace_bytes(ctx) == 1004  # engine 7 is plan index 4
    assert len(FakeGraph.made) == 1  # one graph per layer geometry, shared by the engines' tactics


def test_an_engine_that_builds_at_the_opt_shape_but_not_the_max_one_cannot_size_its_workspace(fake_cudnn,
                                                                                              monkeypatch):
    monkeypatch.setattr(FakeGraph, "RANKING", [(3, {})])
    tactic = CudnnConv(3)
    assert tactic.supports(conv_context((2, 4, 6, 6), 8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1))) is True
    monkeypatch.setattr(FakeGraph, "FAILING", {3})  # the larger shape's graph cannot build the engine
    with pytest.raises(cudnn_frontend.CudnnPlanError, match=r"^at input shape \[8, 4, 6, 6\]: cuDNN 9.19.0 cannot "
                                                          r"build engine 3 for this convolution"):
        tactic.workspace_bytes(conv_context((8, 4, 6, 6), 8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1)))


def test_a_graph_cudnn_refuses_is_one_reason_for_every_engine_asked_once(fake_cudnn, monkeypatch):
    monkeypatch.setattr(FakeGraph, "REFUSED", True)
    ctx = conv_context((1, 4, 6, 6), 8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1))
    reasons = {t.supports(ctx) for t in cudnn_tactics()}
    assert reasons == {"cuDNN 9.19.0 does not support this convolution graph: RuntimeError: no engine supports the "
                       "graph"}
    assert len(FakeGraph.made) == 2  # the fused graph and the bare convolution (fusion_levels), each asked once


def test_an_engine_cudnn_cannot_build_is_an_execution_error_naming_layer_and_engine(fake_cudnn, monkeypatch):
    monkeypatch.setattr(FakeGraph, "RANKING", [(3, {}), (4, {})])
    monkeypatch.setattr(FakeGraph, "FAILING", {40})
    ctx = conv_context((1, 4, 6, 6), 8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1), bias=False)

    def state():  # what prepare makes, less the device arrays
        return {"graphs": {}, "layer": ctx.layer, "kernel_shape": (8, 4, 3, 3), "dtype": "float32", "bias": None,
                "epilogue": NO_EPILOGUE, "channels_last": False}

    # an engine the heuristics no longer propose is replayed with its default knobs
    entry = CudnnConv(33)._graph_for(state(), (2, 4, 6, 6))
    assert entry.graph.graph.plans[-1] == (33, {}) and entry.workspace_bytes == 1002
    with pytest.raises(trt.ExecutionError, match=r"layer 'conv7': tactic gpu:conv:cudnn_engine40 \(the plan's cuDNN "
                                                 r"engine\) cannot run at input shape \[2, 4, 6, 6\]: cuDNN 9.19.0 "
                                                 r"cannot build engine 40 .*heuristics propose engines \[3, 4\]"):
        CudnnConv(40)._graph_for(state(), (2, 4, 6, 6))


def test_an_engine_runs_the_fusion_level_it_was_timed_at_whatever_the_plan_dims(fake_cudnn, monkeypatch):
    """Which fused graph an engine builds is decided per input shape, the same way when the builder times it and
    when it runs: a plan's dynamic dims (-1), which no cuDNN graph takes, decide nothing (on an H100 engine 11,
    timed on conv + bias + ReLU, was asked for the bare convolution at run time, which it does not build)."""
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(asarray=np.asarray))

    def fused(graph):
        return any(op == "relu" for op, _, _ in graph.ops)

    def create_execution_plans(self, modes):
        if any(d < 0 for t in self.tensors.values() for d in t.dim):
            raise RuntimeError("a negative dimension")
        self.modes, self.plans = modes, [(11, {})] if fused(self) else [(3, {})]

    def build_plan_at_index(self, index):
        if self.plans[index][0] == 11 and not fused(self):
            raise RuntimeError("engine 11 is not supported")
        self.built.append(index)

    monkeypatch.setattr(FakeGraph, "create_execution_plans", create_execution_plans)
    monkeypatch.setattr(FakeGraph, "build_plan_at_index", build_plan_at_index)
    epilogue = Epilogue(activation=Activation(ActivationType.RELU))
    tactic = CudnnConv(11)
    assert tactic.supports(conv_context((2, 4, 6, 6), 8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1),
                                        epilogue=epilogue)) is True
    in_plan = conv_context((-1, 4, 6, 6), 8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1), epilogue=epilogue)
    state = tactic.prepare(in_plan)
    for batch in (2, 5):
        entry = tactic._graph_for(state, (batch, 4, 6, 6))
        assert [op for op, _, _ in entry.graph.graph.ops] == ["conv_fprop", "bias", "relu"], batch
        assert entry.bias_in_graph and entry.residual is None and entry.after is None
    # engine 3 builds only the graphs without the ReLU: conv + bias, the ReLU after it
    entry = CudnnConv(3)._graph_for(CudnnConv(3).prepare(in_plan), (2, 4, 6, 6))
    assert [op for op, _, _ in entry.graph.graph.ops] == ["conv_fprop", "bias"]
    assert entry.bias_in_graph and entry.after == Epilogue(activation=Activation(ActivationType.RELU))


def test_a_plan_keeps_the_cudnn_engine_and_is_refused_where_cudnn_is_missing(no_cudnn):
    """The plan records the chosen engine's tactic (id and name) per layer; loading it where cuDNN is unusable is a
    PlanFormatError naming the layer and the engine. (Building one needs a GPU: a CPU plan's conv is pointed at
    the engine's tactic, as a GPU build choosing it would record.)"""
    from onnx import TensorProto, helper, numpy_helper

    from engine.conformance.harness import parse_onnx
    from engine.container import pack, unpack
    from engine.plan import FORMAT_VERSION, MAGIC

    w = np.random.default_rng(3).standard_normal((3, 2, 3, 3)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w")])
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device = "cpu"
    plan = builder.build_serialized_network(parse_onnx(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)])), config)
    header, arrays = unpack(plan, MAGIC, FORMAT_VERSION, "plan")
    (conv,) = [layer for layer in header["layers"] if layer["name"] == "conv"]
    engine7 = tactic_by_id(stable_tactic_id("gpu:conv:cudnn_engine7"))
    conv.update(tactic_id=engine7.id, tactic_name=engine7.name, tactic_ids=[engine7.id], tactic_names=[engine7.name])
    header.pop("buffers")
    with pytest.raises(trt.PlanFormatError, match=r"^plan: layer 'conv' runs on cuDNN \(tactic "
                                                  r"gpu:conv:cudnn_engine7\), which is not usable here: the cuDNN "
                                                  r"frontend \(nvidia-cudnn-frontend\) cannot be imported"):
        trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(pack(MAGIC, FORMAT_VERSION, header, arrays))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("activation", [Activation(ActivationType.LEAKY_RELU, 0.1),
                                        Activation(ActivationType.ELU, 0.5)])
def test_run_hands_cudnn_each_operand_and_applies_what_it_cannot(fake_cudnn, monkeypatch, activation, dtype):
    """NumPy arrays stand in for CuPy ones: the stand-in frontend reads the operands at the addresses the tactic
    passes, as cuDNN would. LeakyReLU is fused into the graph, ELU applied after it by the epilogue helper."""
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(
        asarray=np.asarray, cuda=types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=0))))
    monkeypatch.setattr(FakeGraph, "RANKING", [(6, {})])
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 9, 8)).astype(dtype)
    ctx = conv_context(x.shape, 6, 2, (3, 3), (2, 1), (1, 2), (1, 0), (2, 1), dtype=from_numpy(dtype),
                       epilogue=Epilogue(residual=3, activation=activation))
    w = rng.standard_normal(ctx.inputs[1].shape).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    ctx.inputs[1] = TensorInfo(w.shape, ctx.inputs[1].dtype, w)
    ctx.inputs[2] = TensorInfo(b.shape, ctx.inputs[2].dtype, b)
    residual = rng.standard_normal((2, 6, 1, 5)).astype(dtype)  # broadcast over rows: materialized for cuDNN
    (tactic,) = [t for t in cudnn_tactics() if t.engine_id == 6]
    assert tactic.supports(ctx) is True
    out = np.full(ctx.outputs[0].shape, np.nan, dtype)
    tactic.run(tactic.prepare(ctx), [x, w, b, residual], [out], None, np)
    want = conv_float64(x, w, b, (2, 1), (1, 2), (1, 0), (1, 1), 2) + residual.astype(np.float64)
    want = np.where(want >= 0, want, 0.1 * want) if activation.type == ActivationType.LEAKY_RELU else \
        np.where(want > 0, want, 0.5 * (np.exp(want) - 1))
    tolerance = 1e-2 if dtype == np.float16 else 1e-5
    np.testing.assert_allclose(out, want, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("refused, graph_ops", [({"add", "relu"}, ["conv_fprop", "bias"]),
                                               ({"add", "relu", "bias"}, ["conv_fprop"])])
def test_what_cudnn_declines_to_fuse_runs_after_the_graph(fake_cudnn, monkeypatch, refused, graph_ops):
    """cuDNN 9 declines NCHW graphs with a residual or an activation (seen on an H200): the tactic falls back to a
    less fused graph and applies bias, residual and activation after it, in the fused graph's order."""
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(
        asarray=np.asarray, cuda=types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=0))))
    monkeypatch.setattr(FakeGraph, "RANKING", [(6, {})])
    monkeypatch.setattr(FakeGraph, "REFUSED_OPS", refused)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
    ctx = conv_context(x.shape, 6, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1),
                       epilogue=Epilogue(residual=3, activation=Activation(ActivationType.RELU)))
    w = rng.standard_normal(ctx.inputs[1].shape).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    ctx.inputs[1] = TensorInfo(w.shape, ctx.inputs[1].dtype, w)
    ctx.inputs[2] = TensorInfo(b.shape, ctx.inputs[2].dtype, b)
    residual = rng.standard_normal(ctx.outputs[0].shape).astype(np.float32)
    (tactic,) = [t for t in cudnn_tactics() if t.engine_id == 6]
    assert tactic.supports(ctx) is True
    out = np.full(ctx.outputs[0].shape, np.nan, np.float32)
    tactic.run(tactic.prepare(ctx), [x, w, b, residual], [out], None, np)
    assert [op for op, _, _ in FakeGraph.made[-1].ops] == graph_ops
    want = np.maximum(conv_float64(x, w, b, (1, 1), (1, 1), (1, 1), (1, 1), 1) + residual, 0)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


class WorkspaceFailingTactic(trt.Tactic):
    """Supported, preferred when nothing is timed, but cannot size its workspace (as a cuDNN engine that builds at
    the opt shapes and not at the max ones)."""

    name = "test_workspace_failing_elementwise"
    layer_type = LayerType.ELEMENTWISE
    heuristic_rank = -1

    def workspace_bytes(self, ctx):
        raise cudnn_frontend.CudnnPlanError("cannot build engine 3 at the max shape")


def test_a_tactic_whose_workspace_cannot_be_sized_is_left_out_with_the_reason():
    tactic = trt.register_tactic(WorkspaceFailingTactic())
    try:
        logger = trt.CapturingLogger()
        builder = trt.Builder(logger)
        network = builder.create_network()
        x = network.add_input("x", trt.DataType.FLOAT, (2, 3))
        network.mark_output(network.add_elementwise(x, x, trt.ElementWiseOperation.SUM, name="add").get_output(0))
        config = builder.create_builder_config()
        config.device = "cpu"
        config.builder_optimization_level = 0
        engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
    finally:
        trt.tactics.unregister_tactic(tactic)
    assert {r["name"]: r["tactic"] for r in engine.layer_info()}["add"] != tactic.name
    why = ("[add] tactic test_workspace_failing_elementwise skipped: workspace_bytes() raised "
           "CudnnPlanError('cannot build engine 3 at the max shape')")
    assert (trt.Severity.VERBOSE, why) in logger.messages
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (out,) = engine.create_execution_context().execute({"x": x}).values()
    np.testing.assert_array_equal(out, 2 * x)


def test_a_channels_last_layer_is_one_nhwc_graph_reading_and_writing_nhwc_memory(fake_cudnn, monkeypatch):
    """A layer the format pass made HWC (BuilderConfig.channels_last): X, W, the residual and Y get channels-last
    strides in the graph (NCHW-ordered dims), the weights are handed over KRSC, and the stand-in frontend, reading
    and writing memory through those strides, gives the float64 reference in the HWC output's NHWC memory."""
    import dataclasses

    from engine.enums import TensorFormat
    from engine.tensor_formats import empty_in_format, is_channels_last

    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(
        asarray=np.asarray, cuda=types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=0))))
    monkeypatch.setattr(FakeGraph, "RANKING", [(6, {})])
    hwc, linear = TensorFormat.HWC, TensorFormat.LINEAR
    rng = np.random.default_rng(6)
    ctx = conv_context((2, 4, 9, 8), 6, 2, (3, 3), (2, 1), (1, 2), (1, 0), (2, 1),
                       epilogue=Epilogue(residual=3, activation=Activation(ActivationType.LEAKY_RELU, 0.1)))
    ctx = dataclasses.replace(ctx, input_formats=(hwc, linear, linear, hwc), output_formats=(hwc,))
    w = rng.standard_normal(ctx.inputs[1].shape).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    ctx.inputs[1] = TensorInfo(w.shape, ctx.inputs[1].dtype, w)
    ctx.inputs[2] = TensorInfo(b.shape, ctx.inputs[2].dtype, b)
    x = empty_in_format(np, (2, 4, 9, 8), np.float32, hwc)
    x[...] = rng.standard_normal(x.shape)
    residual = empty_in_format(np, ctx.outputs[0].shape, np.float32, hwc)
    residual[...] = rng.standard_normal(residual.shape)
    (tactic,) = [t for t in cudnn_tactics() if t.engine_id == 6]
    assert tactic.supports(ctx) is True
    out = empty_in_format(np, ctx.outputs[0].shape, np.float32, hwc)
    out[...] = np.nan
    state = tactic.prepare(ctx)
    tactic.run(state, [x, w, b, residual], [out], None, np)
    graph = FakeGraph.made[-1]
    x_t, w_t, r_t = (graph.tensors[n] for n in "XWR")
    assert (x_t.dim, x_t.stride) == ([2, 4, 9, 8], [288, 1, 32, 4]), "X: NCHW dims, NHWC strides"
    assert (w_t.dim, w_t.stride) == ([6, 2, 3, 3], [18, 1, 6, 2]), "W: KCRS dims, KRSC strides"
    assert (r_t.dim, r_t.stride) == ([2, 6, 5, 5], [150, 1, 30, 6]) and graph.output.stride == [150, 1, 30, 6]
    assert state["w"].flags.c_contiguous and state["w"].shape == (6, 3, 3, 2), "weights handed over KRSC"
    want = conv_float64(x, w, b, (2, 1), (1, 2), (1, 0), (1, 1), 2) + residual
    want = np.where(want >= 0, want, 0.1 * want)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    assert is_channels_last(out)


def test_a_channels_last_context_needs_a_2d_convolution(fake_cudnn, monkeypatch):
    import dataclasses

    from engine.enums import TensorFormat

    monkeypatch.setattr(FakeGraph, "RANKING", [(6, {})])
    ctx = conv_context((3, 2, 10), 4, 1, (3,), (2,), (1,), (1,), (0,), bias=False)
    ctx = dataclasses.replace(ctx, input_formats=(TensorFormat.HWC, None), output_formats=(TensorFormat.HWC,))
    (tactic,) = [t for t in cudnn_tactics() if t.engine_id == 6]
    assert tactic.supports(ctx) == "HWC tensors are 4-D: a 2-D convolution"
    assert TensorFormat.HWC in tactic.formats and tactic.unavailable() is None
