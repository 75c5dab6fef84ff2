"""The cuDNN SDPA attention tactic on the GPU (needs nvidia-cudnn-frontend and libcudnn 9; docs/gpu.md): run
directly on FP16 odd sizes against float64 NumPy (permuted operands, padding / causal / full bias masks, rank 3),
rows a mask fills with -inf (NaN, or 0 under nan_to_zero), and bert_tiny / gpt2_tiny built with their ATTENTION
layers on cuDNN against onnxruntime within the FP16 bound of the other GPU attention tests, replayed as CUDA graphs.
Not yet run on a GPU (written without one)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from shared_model_cases import CASES, MODELS, build_case, make_feeds

import engine as trt
from engine.backends.cudnn_frontend import unavailable_reason, version_string
from engine.dtypes import from_numpy
from engine.enums import LayerType
from engine.ir import Node
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext, tactic_by_id
from engine.tactics.base import stable_tactic_id

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
RNG = np.random.default_rng(29)
SDPA = "gpu:attention:cudnn_sdpa"
BSHD = [0, 2, 1, 3]


@pytest.fixture(autouse=True)
def _cudnn_usable():
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"cuDNN is not usable here ({reason}); install the nvidia-cudnn-frontend wheel (docs/gpu.md)")


def reference(q, k, v, mask, scale) -> np.ndarray:
    """softmax(q k^T scale + mask) v of the logical operands in float64 (NaN rows where a row is all -inf)."""
    scores = q.astype(np.float64) @ np.swapaxes(k.astype(np.float64), -1, -2) * scale
    if mask is not None:
        scores = scores + mask.astype(np.float64)
    with np.errstate(invalid="ignore"):
        e = np.exp(scores - scores.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True)) @ v.astype(np.float64)


def stored(logical: np.ndarray, perm: list[int]) -> np.ndarray:
    return np.ascontiguousarray(logical.transpose(np.argsort(perm)))


CASES_DIRECT = {  # name: (leading dims, Sq, Sk, D, Dv, mask kind, mask constant, permutations where not identity)
    "bert_heads_last_padding": ((2, 3), 17, 17, 40, 24, "padding", False,
                                {"q_perm": BSHD, "k_perm": BSHD, "v_perm": BSHD, "out_perm": BSHD}),
    "gpt2_causal_constant": ((1, 2), 13, 13, 64, 64, "causal", True, {"q_perm": BSHD, "out_perm": BSHD}),
    "full_bias_long_keys": ((2, 2), 5, 70, 128, 128, "full", False, {}),
    "rank3_no_mask": ((3,), 19, 45, 64, 64, None, False, {}),
}


def make_mask(kind, lead, sq, sk):
    if kind == "padding":
        return np.where(RNG.random((lead[0], 1, 1, sk)) < 0.3, -10000.0, 0.0).astype(np.float16)
    if kind == "causal":
        return np.where(np.tril(np.ones((sq, sk))) > 0, 0.0, -np.inf).astype(np.float16)
    if kind == "full":
        return RNG.standard_normal(lead + (sq, sk)).astype(np.float16)
    return None


def run_sdpa(lead, sq, sk, d, dv, mask, constant, layout, nan_to_zero=False):
    identity = list(range(len(lead) + 2))
    perms = {key: layout.get(key, identity) for key in ("q_perm", "k_perm", "v_perm", "out_perm")}
    q, k, v = (RNG.standard_normal(lead + s).astype(np.float16) for s in ((sq, d), (sk, d), (sk, dv)))
    scale = d ** -0.5
    layer = Node(LayerType.ATTENTION, "attention", {"scale": scale, "nan_to_zero": nan_to_zero, **perms})
    inputs = [stored(q, perms["q_perm"]), stored(k, perms["k_perm"]), stored(v, perms["v_perm"])]
    inputs += [] if mask is None else [mask]
    half = from_numpy(np.float16)
    infos = [TensorInfo(a.shape, half, a if constant and i == 3 else None) for i, a in enumerate(inputs)]
    out_shape = tuple(np.empty(lead + (sq, dv), np.int8).transpose(perms["out_perm"]).shape)
    ctx = TacticContext(layer, infos, [TensorInfo(out_shape, half)], backend="gpu")
    tactic = tactic_by_id(stable_tactic_id(SDPA))
    assert tactic.supports(ctx) is True, f"cuDNN {version_string()}: {tactic.supports(ctx)}"
    nbytes = tactic.workspace_bytes(ctx)
    out = cupy.full(out_shape, np.nan, cupy.float16)
    tactic.run(tactic.prepare(ctx), [cupy.asarray(a) for a in inputs], [out],
               cupy.empty(nbytes, cupy.uint8) if nbytes else None, cupy)
    cupy.cuda.get_current_stream().synchronize()
    return cupy.asnumpy(out), reference(q, k, v, mask, scale).transpose(perms["out_perm"])


@pytest.mark.parametrize("case", list(CASES_DIRECT))
def test_cudnn_sdpa_matches_float64(case) -> None:
    lead, sq, sk, d, dv, kind, constant, layout = CASES_DIRECT[case]
    got, want = run_sdpa(lead, sq, sk, d, dv, make_mask(kind, lead, sq, sk), constant, layout)
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2, err_msg=f"{SDPA} (cuDNN {version_string()}) {case}")


@pytest.mark.parametrize("constant", [False, True])
@pytest.mark.parametrize("nan_to_zero", [False, True])
def test_a_row_the_mask_fills_with_minus_inf_is_nan_or_zero(constant, nan_to_zero) -> None:
    """cuDNN's softmax statistics find the row and the fill kernel writes NaN (as Softmax gives) or 0 under
    nan_to_zero, whatever cuDNN wrote there; the other rows match float64."""
    lead, sq, sk = (2, 2), 9, 33
    mask = np.zeros((1, 1, sq, sk), np.float16)
    mask[..., 3, :] = -np.inf
    mask[..., 5, ::2] = -np.inf
    got, want = run_sdpa(lead, sq, sk, 16, 8, mask, constant, {}, nan_to_zero)
    row = got[:, :, 3]
    assert (np.all(row == 0) if nan_to_zero else np.isnan(row).all()), \
        f"cuDNN {version_string()}: the masked row came out {row.ravel()[:8]}"
    keep = np.ones(sq, bool)
    keep[3] = False
    np.testing.assert_allclose(got[:, :, keep], want[:, :, keep], rtol=2e-2, atol=2e-2)


class AttentionOnCudnn(trt.IAlgorithmSelector):
    """ATTENTION layers only on cuDNN SDPA (an empty choice is a BuildError listing what was offered); other
    layers keep every tactic."""

    def select_algorithms(self, context, choices):
        if context.layer_type != "ATTENTION":
            return list(range(len(choices)))
        return [i for i, a in enumerate(choices) if a.tactic_name == SDPA]

    def report_algorithms(self, contexts, choices):
        pass


@pytest.mark.parametrize("model_name", ["bert_tiny", "gpt2_tiny"])
def test_shared_transformers_in_fp16_on_cudnn_sdpa_match_onnxruntime_and_replay(model_name) -> None:
    case = next(c for c in CASES if c.model == model_name)

    def configure(config: trt.BuilderConfig) -> None:
        config.set_flag(trt.BuilderFlag.FP16)
        config.algorithm_selector = AttentionOnCudnn()

    engine, _ = build_case(case, "gpu", configure)
    tactics = [row["tactic"] for row in engine.layer_info() if row["type"] == "ATTENTION"]
    assert tactics and set(tactics) == {SDPA}, tactics
    model = onnx.load(MODELS / f"{model_name}.onnx")
    session = ort.InferenceSession((MODELS / f"{model_name}.onnx").as_posix(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    context = engine.create_execution_context()
    context.use_cuda_graph = True
    for seed, shapes in enumerate(case.run_shapes):
        feeds = make_feeds(model, shapes, seed)
        want = dict(zip(names, session.run(None, feeds)))
        context.execute(feeds)  # runs (building cuDNN's plan at these shapes) and captures
        got = context.execute(feeds)  # replays
        for name in names:  # the bound the shared-model FP16 test uses: 1% of the output's scale
            error, scale = np.abs(got[name].astype(np.float64) - want[name]).max(), np.abs(want[name]).max()
            assert error <= 1e-2 * scale, f"{model_name} {name} at {shapes}: max error {error:.3g} vs scale " \
                                          f"{scale:.3g} (cuDNN {version_string()})"
    assert context.cuda_graph_captures == len(case.run_shapes), engine.logger.messages
