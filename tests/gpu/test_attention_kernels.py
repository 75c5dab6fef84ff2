"""The transformer GPU tactics (tactics/gpu_attention.py, gpu_rows.py residual_layer_norm_rows) run directly on odd
sizes against float64 NumPy; the fused BERT-style block and bert_tiny built for the GPU against onnxruntime,
replayed as a CUDA graph; and the flash kernel timed against the cuBLAS + softmax tactic at BERT-base's shape
(printed: the builder picks the faster per layer)."""
from __future__ import annotations

import time

import numpy as np
import onnx
import pytest
from shared_model_cases import CASES, MODELS, make_feeds

import engine as trt
from engine.dtypes import from_numpy
from engine.enums import LayerType
from engine.ir import Node
from engine.ops.attention import PERMS
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext, tactic_by_id
from engine.tactics.base import stable_tactic_id

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
RNG = np.random.default_rng(41)
ATTENTION_TACTICS = ["gpu:attention:flash_attention", "gpu:attention:cublas_softmax"]


def tactic(name: str):
    return tactic_by_id(stable_tactic_id(name))


def info(array) -> TensorInfo | None:
    return None if array is None else TensorInfo(array.shape, from_numpy(array.dtype), None)


def run_tactic(name: str, layer: Node, inputs: list, out_shapes: list, dtype) -> list[np.ndarray]:
    """prepare + run into NaN-filled outputs with exactly the workspace the tactic claims."""
    t = tactic(name)
    ctx = TacticContext(layer, [info(a) for a in inputs], [TensorInfo(s, from_numpy(dtype)) for s in out_shapes],
                        backend="gpu")
    assert t.supports(ctx) is True, t.supports(ctx)
    outs = [cupy.full(s, np.nan, dtype=dtype) for s in out_shapes]
    nbytes = t.workspace_bytes(ctx)
    t.run(t.prepare(ctx), [None if a is None else cupy.asarray(a) for a in inputs], outs,
          cupy.empty(nbytes, cupy.uint8) if nbytes else None, cupy)
    cupy.cuda.get_current_stream().synchronize()
    return [cupy.asnumpy(o) for o in outs]


def attention_reference(q, k, v, mask, scale, nan_to_zero):
    """Of the logical operands, in float64."""
    scores = q.astype(np.float64) @ np.swapaxes(k.astype(np.float64), -1, -2) * scale
    if mask is not None:
        scores = scores + mask.astype(np.float64)
    with np.errstate(invalid="ignore"):
        e = np.exp(scores - scores.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
    return (np.where(np.isnan(p), 0, p) if nan_to_zero else p) @ v.astype(np.float64)


BSHD, SWAP4, SWAP3 = [0, 2, 1, 3], [0, 1, 3, 2], [0, 2, 1]
ATTENTION_CASES = {  # name: (leading dims, Sq, Sk, D, Dv, mask, {operand: permutation} where not the identity)
    "bert_heads_last": ((2, 3), 17, 17, 40, 24, "padding", {"q_perm": BSHD, "k_perm": BSHD, "v_perm": BSHD,
                                                             "out_perm": BSHD}),
    "causal_long_keys": ((1, 2), 5, 70, 128, 128, "causal", {}),
    "rank3_k_transposed": ((3,), 19, 45, 64, 64, None, {"k_perm": SWAP3}),
    "fully_masked_row": ((2, 2), 9, 33, 16, 8, "row", {"k_perm": SWAP4}),
}


def stored(logical: np.ndarray, perm: list[int]) -> np.ndarray:
    """The array whose transpose by `perm` is `logical` (contiguous, as a Transpose's input is)."""
    return np.ascontiguousarray(logical.transpose(np.argsort(perm)))


def make_mask(kind, lead, sq, sk):
    if kind == "padding":
        return np.where(RNG.random((lead[0], 1, 1, sk)) < 0.3, -10000.0, 0.0)
    if kind == "causal":
        return np.where(np.tril(np.ones((sq, sk)), k=sk - sq) > 0, 0.0, -np.inf)
    if kind == "row":
        mask = np.zeros((1, 1, sq, sk))
        mask[..., 3, :] = -np.inf
        return mask
    return None


@pytest.mark.parametrize("name", ATTENTION_TACTICS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("case", list(ATTENTION_CASES))
@pytest.mark.parametrize("nan_to_zero", [False, True])
def test_attention_tactics_match_float64(name, dtype, case, nan_to_zero) -> None:
    lead, sq, sk, d, dv, mask_kind, layout = ATTENTION_CASES[case]
    identity = list(range(len(lead) + 2))
    perms = {key: layout.get(key, identity) for key in ("q_perm", "k_perm", "v_perm", "out_perm")}
    q, k, v = (RNG.standard_normal(lead + shape).astype(dtype) for shape in ((sq, d), (sk, d), (sk, dv)))
    mask = make_mask(mask_kind, lead, sq, sk)
    mask = None if mask is None else mask.astype(dtype)
    scale = d ** -0.5
    layer = Node(LayerType.ATTENTION, "attention", {"scale": scale, "nan_to_zero": nan_to_zero, **perms})
    inputs = [stored(q, perms["q_perm"]), stored(k, perms["k_perm"]), stored(v, perms["v_perm"])]
    inputs += [mask] if mask is not None else []
    out_shape = tuple(np.empty(lead + (sq, dv)).transpose(perms["out_perm"]).shape)
    (got,) = run_tactic(name, layer, inputs, [out_shape], dtype)
    want = attention_reference(q, k, v, mask, scale, nan_to_zero).transpose(perms["out_perm"])
    tol = 2e-2 if dtype == np.float16 else 1e-4
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol, equal_nan=True,
                               err_msg=f"{name} {case} {np.dtype(dtype).name} nan_to_zero={nan_to_zero}")
    if case == "fully_masked_row":
        row = got[:, :, 3]
        assert (np.all(row == 0) if nan_to_zero else np.isnan(row).all()), f"{name}: the masked row gave {row}"


def test_flash_attention_refuses_head_dims_over_128() -> None:
    q = np.zeros((1, 1, 4, 160), np.float32)
    layer = Node(LayerType.ATTENTION, "attention", {"scale": 1.0, "nan_to_zero": False,
                                                    **{key: [0, 1, 2, 3] for key in PERMS}})
    ctx = TacticContext(layer, [info(q), info(q), info(q)], [TensorInfo((1, 1, 4, 160), from_numpy(q.dtype))],
                        backend="gpu")
    assert "at most 128" in tactic("gpu:attention:flash_attention").supports(ctx)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_masked_softmax_rows_match_float64(dtype) -> None:
    scores = (RNG.standard_normal((2, 3, 7, 301)) * 4).astype(dtype)
    mask = np.where(RNG.random((2, 1, 1, 301)) < 0.2, -30000.0, 0.0).astype(dtype)
    layer = Node(LayerType.MASKED_SOFTMAX, "masked_softmax", {"nan_to_zero": False})
    (got,) = run_tactic("gpu:masked_softmax:masked_softmax_rows", layer, [scores, mask], [scores.shape], dtype)
    s = scores.astype(np.float64) + mask
    e = np.exp(s - s.max(-1, keepdims=True))
    tol = 2e-3 if dtype == np.float16 else 1e-6
    np.testing.assert_allclose(got, e / e.sum(-1, keepdims=True), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("outputs", [1, 2])
def test_residual_layer_norm_rows_match_float64(dtype, outputs) -> None:
    shape = (3, 5, 301)
    x, r = (RNG.standard_normal(shape).astype(dtype) for _ in range(2))
    gamma, beta = RNG.uniform(0.5, 1.5, 301).astype(dtype), RNG.standard_normal(301).astype(dtype)
    layer = Node(LayerType.RESIDUAL_NORMALIZATION, "residual_norm", {"axes": [2], "epsilon": 1e-5,
                                                                      "outputs": outputs})
    t = tactic("gpu:residual_normalization:residual_layer_norm_rows")
    ctx = TacticContext(layer, [info(x), info(r), TensorInfo(gamma.shape, from_numpy(dtype), gamma),
                                TensorInfo(beta.shape, from_numpy(dtype), beta)],
                        [TensorInfo(shape, from_numpy(dtype))] * outputs, backend="gpu")
    assert t.supports(ctx) is True, t.supports(ctx)
    outs = [cupy.full(shape, np.nan, dtype=dtype) for _ in range(outputs)]
    nbytes = t.workspace_bytes(ctx)
    t.run(t.prepare(ctx), [cupy.asarray(a) for a in (x, r, gamma, beta)], outs,
          cupy.empty(nbytes, cupy.uint8) if nbytes else None, cupy)
    total = (x + r).astype(np.float64)  # the sum rounded to the storage type, as the unfused Add stores it
    mean = total.mean(-1, keepdims=True)
    want = (total - mean) / np.sqrt(((total - mean) ** 2).mean(-1, keepdims=True) + 1e-5) * gamma + beta
    tol = 2e-2 if dtype == np.float16 else 1e-5
    np.testing.assert_allclose(cupy.asnumpy(outs[0]), want, rtol=tol, atol=tol)
    if outputs == 2:
        np.testing.assert_array_equal(cupy.asnumpy(outs[1]), x + r)


def gpu_engine(model: onnx.ModelProto, profile: dict | None = None, fp16: bool = False) -> trt.Engine:
    from transformer_models import build_plan

    plan = build_plan(model, profile, fp16, device="gpu")
    return trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan)


def test_bert_style_block_on_the_gpu_replays_as_a_cuda_graph() -> None:
    from onnxruntime_reference import onnxruntime_outputs
    from transformer_models import attention_model, bert_feeds

    model, feeds = attention_model("bert"), bert_feeds()
    engine = gpu_engine(model)
    rows = {row["type"]: row for row in engine.layer_info() if not row["host"]}
    assert rows["ATTENTION"]["tactic"] in ATTENTION_TACTICS, rows["ATTENTION"]  # the reference one is not capturable
    assert "RESIDUAL_NORMALIZATION" in rows
    context = engine.create_execution_context()
    context.use_cuda_graph = True
    want = onnxruntime_outputs(model, feeds)["y"]
    for _ in range(2):
        np.testing.assert_allclose(context.execute(feeds)["y"], want, rtol=1e-4, atol=1e-4)
    assert context.cuda_graph_captures == 1, engine.logger.messages


@pytest.mark.parametrize("fp16", [False, True])
def test_bert_tiny_on_the_gpu_matches_onnxruntime(fp16) -> None:
    import onnxruntime as ort

    case = next(c for c in CASES if c.model == "bert_tiny")
    path = MODELS / "bert_tiny.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    model = onnx.load(path)
    engine = gpu_engine(model, case.profile, fp16=fp16)
    types = [row["type"] for row in engine.layer_info() if not row["host"]]
    assert types.count("ATTENTION") == 2 and types.count("RESIDUAL_NORMALIZATION") == 4, types
    context = engine.create_execution_context()
    context.use_cuda_graph = True
    session = ort.InferenceSession(path.as_posix(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for seed, shapes in enumerate(case.run_shapes):
        feeds = make_feeds(model, shapes, seed)
        want = dict(zip(names, session.run(None, feeds)))
        got = context.execute(feeds)
        for name in names:
            if fp16:  # the bound the shared-model FP16 test uses: 1% of the output's scale
                error, scale = np.abs(got[name].astype(np.float64) - want[name]).max(), np.abs(want[name]).max()
                assert error <= 1e-2 * scale, f"{name} at {shapes}: max error {error:.3g} vs scale {scale:.3g}"
            else:
                np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4, err_msg=f"{name} at {shapes}")


def test_flash_attention_against_cublas_softmax_at_bert_base_shape() -> None:
    """Both tactics agree at BERT-base's attention (batch 32, 12 heads, 128 tokens, head dim 64, FP16); their
    times are printed (the builder's timing picks per layer, so neither needs to win here)."""
    lead, s, d = (32, 12), 128, 64
    q, k, v = (RNG.standard_normal(lead + (s, d)).astype(np.float16) for _ in range(3))
    mask = np.where(RNG.random((32, 1, 1, s)) < 0.2, -10000.0, 0.0).astype(np.float16)
    layer = Node(LayerType.ATTENTION, "attention", {"scale": d ** -0.5, "nan_to_zero": True,
                                                    **{key: [0, 1, 2, 3] for key in PERMS}})
    inputs = [cupy.asarray(a) for a in (q, k, v, mask)]
    results, times = {}, {}
    for name in ATTENTION_TACTICS:
        t = tactic(name)
        ctx = TacticContext(layer, [info(a) for a in (q, k, v, mask)], [TensorInfo(lead + (s, d), from_numpy(q.dtype))],
                            backend="gpu")
        state, out = t.prepare(ctx), cupy.empty(lead + (s, d), cupy.float16)
        nbytes = t.workspace_bytes(ctx)
        workspace = cupy.empty(nbytes, cupy.uint8) if nbytes else None
        for _ in range(3):
            t.run(state, inputs, [out], workspace, cupy)
        cupy.cuda.get_current_stream().synchronize()
        start = time.perf_counter()
        for _ in range(20):
            t.run(state, inputs, [out], workspace, cupy)
        cupy.cuda.get_current_stream().synchronize()
        times[name] = (time.perf_counter() - start) / 20 * 1e3
        results[name] = cupy.asnumpy(out).astype(np.float32)
    print("attention at (32, 12, 128, 64) FP16: " + ", ".join(f"{n} {ms:.3f} ms" for n, ms in times.items()))
    np.testing.assert_allclose(results[ATTENTION_TACTICS[0]], results[ATTENTION_TACTICS[1]], rtol=2e-2, atol=2e-2)
