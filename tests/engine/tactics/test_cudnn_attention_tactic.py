"""The cuDNN SDPA attention tactic without a GPU: unavailability is a reason (supports) or a PlanFormatError naming
the layer (a loaded plan); a stable tactic id of the CUDNN source; and, through a stand-in for the `cudnn` module
that records the graph and computes attention from memory read through the strides the graph declares, the dims
and strides handed over for BERT-like and GPT-2-like operand permutations (checked against float64 NumPy), cuDNN's
causal mask for a constant causal mask, the workspace, and each refusal with its reason."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from cudnn_stand_in import FakeTensor, StandInGraph, operand_memory

import engine as trt
from engine.backends import cudnn_frontend, cudnn_sdpa
from engine.dtypes import DataType
from engine.enums import LayerType, TacticSource
from engine.ir import Node
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext, tactic_by_id, tactics_for
from engine.tactics.base import stable_tactic_id
from engine.tactics.gpu_cudnn_attention import CudnnSdpaAttention, operand_strides

BSHD, SWAP3 = [0, 2, 1, 3], [0, 2, 1]
RNG = np.random.default_rng(23)


def sdpa_tactic() -> CudnnSdpaAttention:
    return tactic_by_id(stable_tactic_id("gpu:attention:cudnn_sdpa"))


def stored(logical: np.ndarray, perm: list[int]) -> np.ndarray:
    """The contiguous array whose transpose by `perm` is `logical` (what a Transpose reads)."""
    return np.ascontiguousarray(logical.transpose(np.argsort(perm)))


def attention_context(lead, sq, sk, d, dv, layout=None, mask=None, mask_constant=False, nan_to_zero=False,
                      dtype=DataType.HALF, scale=0.25):
    """An ATTENTION node of logical shapes (lead + (Sq, D)), ... with the permutations in `layout`."""
    identity = list(range(len(lead) + 2))
    perms = {key: (layout or {}).get(key, identity) for key in ("q_perm", "k_perm", "v_perm", "out_perm")}
    node = Node(LayerType.ATTENTION, "attn3", {"scale": scale, "nan_to_zero": nan_to_zero, **perms})

    def shape(logical, perm):
        return tuple(np.empty(logical, np.int8).transpose(np.argsort(perm)).shape)

    inputs = [TensorInfo(shape(lead + (sq, d), perms["q_perm"]), dtype),
              TensorInfo(shape(lead + (sk, d), perms["k_perm"]), dtype),
              TensorInfo(shape(lead + (sk, dv), perms["v_perm"]), dtype)]
    if mask is not None:
        inputs.append(TensorInfo(mask.shape, dtype, mask if mask_constant else None))
    out = tuple(np.empty(lead + (sq, dv), np.int8).transpose(perms["out_perm"]).shape)
    return TacticContext(node, inputs, [TensorInfo(out, dtype)], "gpu"), perms


def test_without_the_frontend_supports_says_why_and_prepare_names_the_layer(no_cudnn):
    ctx, _ = attention_context((2, 2), 5, 5, 8, 8)
    tactic = sdpa_tactic()
    reason = tactic.supports(ctx)
    assert reason.startswith("the cuDNN frontend (nvidia-cudnn-frontend) cannot be imported: ModuleNotFoundError"), \
        reason
    assert tactic.unavailable() == reason and tactic.workspace_bytes(ctx) == 0
    with pytest.raises(trt.PlanFormatError, match=r"layer 'attn3' runs on cuDNN \(tactic gpu:attention:cudnn_sdpa\), "
                                                  r"which is not usable here: the cuDNN frontend"):
        tactic.prepare(ctx)


def test_one_capturable_cudnn_tactic_with_a_stable_id():
    (tactic,) = [t for t in tactics_for(LayerType.ATTENTION, "gpu") if t.source == TacticSource.CUDNN]
    assert tactic.name == "gpu:attention:cudnn_sdpa" and tactic.id == stable_tactic_id(tactic.name)
    assert tactic.id == 1586955132, "plans and timing caches record this id: it must not change"
    assert tactic_by_id(tactic.id) is tactic and tactic.capturable and tactic.backend == "gpu"


def test_operand_strides_of_permuted_operands():
    # BERT: stored (B, S, H, D) read as (B, H, S, D)
    assert operand_strides((2, 7, 3, 8), (0, 2, 1, 3)) == (168, 8, 24, 1)
    # the output written back to (B, S, H, Dv): stored = transpose(logical, out_perm)
    assert operand_strides((2, 7, 3, 16), (0, 2, 1, 3), inverse=True) == (336, 16, 48, 1)
    # rank 3: one batch whose stride is the operand's size; K stored transposed (N, D, S): D at stride S
    assert operand_strides((3, 8, 5), (0, 2, 1)) == (120, 40, 1, 5)


# ------------------------------------------------------------------------------------- a stand-in frontend
class FakeGraph(StandInGraph):
    """An SDPA graph: records the sdpa call's operands and options."""

    RANKING: list = [(-1, {}), (7, {})]
    FAILING: set = set()
    REFUSED = False
    made: list = []

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sdpa_args = None

    def sdpa(self, name, q, k, v, **params):
        self.sdpa_args = {"q": q.name, "k": k.name, "v": v.name, **{key: getattr(value, "name", value)
                                                                     for key, value in params.items()}}
        self.output = FakeTensor("O")
        self.stats = None if params["is_inference"] else FakeTensor("Stats")
        return [self.output, self.stats]

    def get_workspace_size_plan_at_index(self, index):
        return 4096 + index

    def execute_plan_at_index(self, pack, workspace, index, handle):
        """What cuDNN does: read each operand at its address through its declared dims and strides, compute
        softmax(q k^T scale + bias, causal) v in float64, write O through its strides."""
        assert index in self.built and workspace != 0
        address = {tensor.name: pointer for tensor, pointer in pack.items()}
        self.executed.append(sorted(address))

        def memory(tensor):
            return operand_memory(tensor, address[tensor.name])

        q, k, v = (memory(self.tensors[n]).astype(np.float64) for n in "QKV")
        scores = q @ np.swapaxes(k, -1, -2) * self.sdpa_args["attn_scale"]
        if "bias" in self.sdpa_args:
            scores = scores + memory(self.tensors["Bias"])
        if self.sdpa_args["use_causal_mask"]:
            sq, sk = scores.shape[-2:]
            scores = np.where(np.tril(np.ones((sq, sk), bool)), scores, -np.inf)
        top = scores.max(-1, keepdims=True)
        hidden = np.isneginf(top)  # rows masked entirely: what cuDNN writes there is unspecified, say 0.5
        with np.errstate(invalid="ignore", divide="ignore"):
            e = np.exp(scores - np.where(hidden, 0, top))
            total = e.sum(-1, keepdims=True)
            memory(self.output)[...] = np.where(hidden, 0.5, (e / total) @ v)
            if self.stats is not None:
                assert (self.stats.dim, self.stats.stride, self.stats.data_type) == (
                    list(top.shape[:3]) + [1], [top.shape[1] * top.shape[2], top.shape[2], 1, 1], "FLOAT"), \
                    "the statistics: float32 (B, H, Sq, 1), contiguous"
                memory(self.stats)[...] = top + np.log(total)


@pytest.fixture
def fake_cudnn(monkeypatch, host_addresses):
    module = types.ModuleType("cudnn")
    module.data_type = types.SimpleNamespace(FLOAT="FLOAT", HALF="HALF", BFLOAT16="BFLOAT16")
    module.heur_mode = types.SimpleNamespace(A="A", FALLBACK="FALLBACK")
    module.pygraph = FakeGraph
    module.backend_version = lambda: 91900
    module.backend_version_string = lambda: "9.19.0"
    module.set_stream = lambda handle, stream: None
    monkeypatch.setitem(sys.modules, "cudnn", module)
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(
        cuda=types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=0))))
    monkeypatch.setattr(cudnn_sdpa, "thread_handle", lambda: "handle")
    monkeypatch.setattr(FakeGraph, "made", [])
    cudnn_frontend._probe.cache_clear()
    cudnn_sdpa.SDPA_GRAPHS.clear()
    yield module
    cudnn_frontend._probe.cache_clear()
    cudnn_sdpa.SDPA_GRAPHS.clear()


def reference(q, k, v, mask, scale) -> np.ndarray:
    """softmax(q k^T scale + mask) v of the logical operands, in float64."""
    scores = q.astype(np.float64) @ np.swapaxes(k.astype(np.float64), -1, -2) * scale
    if mask is not None:
        scores = scores + mask.astype(np.float64)
    with np.errstate(invalid="ignore"):  # a row masked entirely gives NaN, as Softmax does
        e = np.exp(scores - scores.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True)) @ v.astype(np.float64)


def run_case(ctx, perms, lead, sq, sk, d, dv, mask, scale=0.25):
    """Random logical operands stored by the layer's permutations, run through the tactic (the stand-in frontend
    reads them where the tactic points it), compared with float64 NumPy; returns the graph."""
    q, k, v = (RNG.standard_normal(lead + s).astype(np.float16) for s in ((sq, d), (sk, d), (sk, dv)))
    tactic = sdpa_tactic()
    assert tactic.supports(ctx) is True, tactic.supports(ctx)
    inputs = [stored(q, perms["q_perm"]), stored(k, perms["k_perm"]), stored(v, perms["v_perm"])]
    inputs += [] if mask is None else [mask]
    out = np.full(ctx.outputs[0].shape, np.nan, np.float16)
    nbytes = tactic.workspace_bytes(ctx)
    tactic.run(tactic.prepare(ctx), inputs, [out], np.zeros(nbytes, np.uint8), np)
    want = reference(q, k, v, mask, scale).transpose(perms["out_perm"])
    np.testing.assert_allclose(out, want, rtol=2e-3, atol=2e-3, err_msg="the output through the declared strides")
    return FakeGraph.made[-1], nbytes


def test_bert_like_operands_are_handed_over_as_strides_with_the_padding_mask_as_a_broadcast_bias(fake_cudnn):
    lead, s, d = (2, 3), 7, 8
    layout = {"q_perm": BSHD, "k_perm": BSHD, "v_perm": BSHD, "out_perm": BSHD}
    mask = np.where(RNG.random((2, 1, 1, s)) < 0.3, -10000.0, 0.0).astype(np.float16)
    ctx, perms = attention_context(lead, s, s, d, d, layout, mask)
    graph, nbytes = run_case(ctx, perms, lead, s, s, d, d, mask)
    q, k, v, bias = (graph.tensors[n] for n in ("Q", "K", "V", "Bias"))
    # stored (B, S, H, D) = (2, 7, 3, 8): strides 168, 24, 8, 1, read as (B, H, S, D)
    assert (q.dim, q.stride) == ([2, 3, 7, 8], [168, 8, 24, 1]) and (k.dim, k.stride) == (q.dim, q.stride)
    assert (v.dim, v.stride) == ([2, 3, 7, 8], [168, 8, 24, 1])
    assert (bias.dim, bias.stride) == ([2, 3, 7, 7], [7, 0, 0, 1]), "the (B, 1, 1, S) mask broadcast by 0 strides"
    assert (graph.output.dim, graph.output.stride) == ([2, 3, 7, 8], [168, 8, 24, 1]) and graph.output.output
    # with a mask, the statistics too (they find the rows the mask fills with -inf)
    assert graph.sdpa_args == {"q": "Q", "k": "K", "v": "V", "attn_scale": 0.25, "is_inference": False,
                               "use_causal_mask": False, "bias": "Bias"}
    assert graph.kwargs["io_data_type"] == "HALF" and graph.kwargs["compute_data_type"] == "FLOAT"
    assert q.data_type == "HALF" and graph.output.data_type == "HALF"
    # the Python engine (-1) is skipped: backend engine 7 at index 1 is built; the tactic's workspace is cuDNN's
    # 4097 bytes (64-byte aligned: 4160) and 2*3*7 float32 statistics (168 bytes, aligned: 192)
    assert graph.modes == ["A", "FALLBACK"] and graph.built == [1] and nbytes == 4160 + 192
    assert graph.executed == [["Bias", "K", "O", "Q", "Stats", "V"]]


def test_gpt2_like_constant_causal_mask_becomes_cudnns_causal_mask(fake_cudnn):
    lead, s, d, dv = (1, 2), 9, 16, 24
    layout = {"q_perm": BSHD, "k_perm": BSHD, "v_perm": BSHD, "out_perm": BSHD}
    causal = np.where(np.tril(np.ones((s, s))) > 0, 0.0, -np.inf).astype(np.float16)
    ctx, perms = attention_context(lead, s, s, d, dv, layout, causal, mask_constant=True, nan_to_zero=True)
    graph, _ = run_case(ctx, perms, lead, s, s, d, dv, causal)
    assert graph.sdpa_args["use_causal_mask"] is True and "bias" not in graph.sdpa_args
    assert graph.sdpa_args["is_inference"] is True, "no statistics: a causal mask never masks a whole row"
    assert "Bias" not in graph.tensors and graph.executed == [["K", "O", "Q", "V"]]
    assert graph.tensors["V"].dim == [1, 2, 9, 24] and graph.output.stride == [432, 24, 48, 1]


def test_a_constant_mask_that_is_not_causal_is_a_bias(fake_cudnn):
    lead, sq, sk, d = (2, 2), 5, 6, 8
    mask = np.where(np.tril(np.ones((sq, sk)), k=sk - sq) > 0, 0.0, -1e4).astype(np.float16)  # bottom-right
    ctx, perms = attention_context(lead, sq, sk, d, d, None, mask, mask_constant=True)
    graph, _ = run_case(ctx, perms, lead, sq, sk, d, d, mask)
    assert graph.sdpa_args["use_causal_mask"] is False
    assert (graph.tensors["Bias"].dim, graph.tensors["Bias"].stride) == ([2, 2, 5, 6], [0, 0, 6, 1])


def test_rank3_operands_are_one_batch_of_heads(fake_cudnn):
    ctx, perms = attention_context((3,), 5, 11, 8, 16)
    graph, _ = run_case(ctx, perms, (3,), 5, 11, 8, 16, None)
    assert (graph.tensors["Q"].dim, graph.tensors["Q"].stride) == ([1, 3, 5, 8], [120, 40, 8, 1])
    assert (graph.tensors["K"].dim, graph.tensors["K"].stride) == ([1, 3, 11, 8], [264, 88, 8, 1])


def test_one_graph_per_spec(fake_cudnn):
    ctx, _ = attention_context((2, 2), 5, 5, 8, 8)
    tactic = sdpa_tactic()
    assert tactic.supports(ctx) is True and tactic.supports(ctx) is True
    assert tactic.workspace_bytes(ctx) == 4160, "cuDNN's 4097 bytes aligned to 64; no mask, no statistics"
    assert len(FakeGraph.made) == 1
    assert tactic.supports(attention_context((2, 2), 6, 5, 8, 8)[0]) is True
    assert len(FakeGraph.made) == 2


@pytest.mark.parametrize("case, reason", [
    (dict(dtype=DataType.FLOAT), "cuDNN's fused flash attention runs HALF and BF16 layers, not FLOAT (FLOAT layers "
                                 "take the flash or cuBLAS tactics)"),
    (dict(d=12), "the head dim of q and k is 12: cuDNN's fused attention takes multiples of 8 up to 128"),
    (dict(dv=136), "the head dim of v is 136: cuDNN's fused attention takes multiples of 8 up to 128"),
    (dict(lead=(3,), layout={"k_perm": SWAP3}),
     "the head dim of k lies at stride 5 in its stored layout (k_perm [0, 2, 1]): cuDNN's fused attention reads it "
     "contiguously"),
    (dict(sk=0), "an empty attention (no heads, queries, keys or dims) is left to the other tactics"),
])
def test_refusals_say_why(fake_cudnn, case, reason):
    lead, sq, sk = case.get("lead", (2, 2)), 5, case.get("sk", 5)
    ctx, _ = attention_context(lead, sq, sk, case.get("d", 8), case.get("dv", 8), case.get("layout"),
                               dtype=case.get("dtype", DataType.HALF))
    assert sdpa_tactic().supports(ctx) == reason
    assert FakeGraph.made == [], "refused before any graph is built"


def test_a_graph_cudnn_refuses_or_cannot_build_is_the_reason(fake_cudnn, monkeypatch):
    ctx, _ = attention_context((2, 2), 5, 5, 8, 8)
    monkeypatch.setattr(FakeGraph, "REFUSED", True)
    assert sdpa_tactic().supports(ctx) == ("cuDNN 9.19.0 does not support this attention graph: RuntimeError: no "
                                           "engine supports the graph")
    monkeypatch.setattr(FakeGraph, "REFUSED", False)
    monkeypatch.setattr(FakeGraph, "FAILING", {7})
    ctx, _ = attention_context((2, 2), 6, 5, 8, 8)
    assert sdpa_tactic().supports(ctx) == ("cuDNN 9.19.0 builds no engine for this attention graph (engine 7: "
                                           "RuntimeError: engine 7 is not supported)")
    with pytest.raises(cudnn_frontend.CudnnPlanError, match=r"^at q shape \[2, 2, 6, 8\]: cuDNN 9.19.0 builds no "):
        sdpa_tactic().workspace_bytes(ctx)


def test_a_run_shape_cudnn_cannot_take_is_an_execution_error_naming_the_layer(fake_cudnn, monkeypatch):
    ctx, _ = attention_context((2, 2), 5, 5, 8, 8)
    tactic = sdpa_tactic()
    state = tactic.prepare(ctx)
    monkeypatch.setattr(FakeGraph, "REFUSED", True)
    q = np.zeros((2, 2, 4, 8), np.float16)
    with pytest.raises(trt.ExecutionError, match=r"layer 'attn3': tactic gpu:attention:cudnn_sdpa cannot run at q "
                                                 r"shape \[2, 2, 4, 8\]: cuDNN 9.19.0 does not support this "
                                                 r"attention graph"):
        tactic.run(state, [q, q, q], [np.zeros((2, 2, 4, 8), np.float16)], np.zeros(8192, np.uint8), np)


def test_a_plan_that_chose_cudnn_sdpa_is_refused_where_cudnn_is_missing(no_cudnn):
    """The plan records the tactic per layer; loading it where cuDNN is unusable is a PlanFormatError naming the
    layer (building one needs a GPU: a CPU plan's ATTENTION layer is pointed at the tactic, as a GPU build choosing
    it would record)."""
    from transformer_models import attention_model, build_plan

    from engine.container import pack, unpack
    from engine.plan import FORMAT_VERSION, MAGIC

    header, arrays = unpack(build_plan(attention_model("bert"), None, False, device="cpu"), MAGIC, FORMAT_VERSION,
                            "plan")
    (layer,) = [entry for entry in header["layers"] if entry["type"] == "ATTENTION"]
    tactic = sdpa_tactic()
    layer.update(tactic_id=tactic.id, tactic_name=tactic.name, tactic_ids=[tactic.id], tactic_names=[tactic.name])
    header.pop("buffers")
    with pytest.raises(trt.PlanFormatError, match=rf"^plan: layer '{layer['name']}' runs on cuDNN \(tactic "
                                                  r"gpu:attention:cudnn_sdpa\), which is not usable here"):
        trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(pack(MAGIC, FORMAT_VERSION, header, arrays))


def test_permutations_that_are_not_their_own_inverse(fake_cudnn):
    """q stored (H, S, B, D) and the output written (S, B, H, Dv): a permutation and its inverse differ here."""
    lead, s, d = (2, 3), 5, 8
    layout = {"q_perm": [2, 0, 1, 3], "out_perm": [2, 0, 1, 3]}
    ctx, perms = attention_context(lead, s, s, d, d, layout)
    assert ctx.inputs[0].shape == (3, 5, 2, 8) and ctx.outputs[0].shape == (5, 2, 3, 8)
    graph, _ = run_case(ctx, perms, lead, s, s, d, d, None)
    assert graph.tensors["Q"].stride == [8, 80, 16, 1] and graph.output.stride == [24, 8, 48, 1]


@pytest.mark.parametrize("constant", [False, True])
@pytest.mark.parametrize("nan_to_zero", [False, True])
def test_rows_the_mask_fills_with_minus_inf_are_nan_or_zero_whatever_cudnn_writes(fake_cudnn, constant, nan_to_zero):
    """The stand-in writes 0.5 into a fully masked row (cuDNN leaves it unspecified); the statistics find the row
    and the tactic writes NaN there as Softmax does, or 0 under nan_to_zero; the other rows are untouched."""
    lead, sq, sk, d = (2, 2), 6, 5, 8
    layout = {"q_perm": BSHD, "k_perm": BSHD, "v_perm": BSHD, "out_perm": BSHD}
    mask = np.where(RNG.random((2, 1, sq, sk)) < 0.3, -np.inf, 0.0).astype(np.float16)
    mask[:, :, :, 0] = 0
    mask[1, :, 4] = -np.inf  # batch 1, query 4: every key masked
    ctx, perms = attention_context(lead, sq, sk, d, d, layout, mask, mask_constant=constant, nan_to_zero=nan_to_zero)
    q, k, v = (RNG.standard_normal(lead + (n, d)).astype(np.float16) for n in (sq, sk, sk))
    tactic = sdpa_tactic()
    assert tactic.supports(ctx) is True, tactic.supports(ctx)
    out = np.full(ctx.outputs[0].shape, 7, np.float16)
    tactic.run(tactic.prepare(ctx), [stored(q, BSHD), stored(k, BSHD), stored(v, BSHD), mask], [out],
               np.zeros(tactic.workspace_bytes(ctx), np.uint8), np)
    logical = out.transpose(np.argsort(perms["out_perm"]))  # (B, H, Sq, Dv)
    hidden = logical[1, :, 4]
    assert (np.all(hidden == 0) if nan_to_zero else np.isnan(hidden).all()), hidden
    keep = np.ones((2, 2, sq), bool)
    keep[1, :, 4] = False
    np.testing.assert_allclose(logical[keep], reference(q, k, v, mask, 0.25)[keep], rtol=2e-3, atol=2e-3)
