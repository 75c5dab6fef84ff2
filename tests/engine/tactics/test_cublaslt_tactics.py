"""The cuBLASLt tactics' CPU-side parts (engine/tactics/gpu_cublaslt.py; the GEMMs themselves are tested on the
GPU in tests/gpu/test_gpu_cublaslt.py): unavailability reported as a reason, the column-major views checked with
float64 NumPy, the epilogue split, the GELU approximation's bound, the heuristic-rank fallback, and the tactic
identity through the timing cache and the plan."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

import engine as trt
from engine.dtypes import DataType, from_numpy
from engine.enums import ActivationType, LayerType, MatrixOperation, TacticSource
from engine.ir import Activation, Epilogue, Node
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo
from engine.plan import deserialize_plan, serialize_plan
from engine.tactics import TacticContext, tactic_by_id, tactics_for
from engine.tactics.base import stable_tactic_id
from engine.tactics.catalog import tactic_source_name
from engine.tactics.gpu_cublaslt import (
    ALGORITHMS_PER_MODE,
    GELU_TANH_MAX_ERROR,
    algorithm_rank,
    cublaslt_unavailable,
    epilogue_plan,
    gemm_views,
)
from engine.timing_cache import TimingCache

NONE, TRANSPOSE = MatrixOperation.NONE, MatrixOperation.TRANSPOSE
RNG = np.random.default_rng(5)


def lt_tactics():
    return [t for t in tactics_for(LayerType.MATRIX_MULTIPLY, "gpu") if t.source == TacticSource.CUBLAS_LT]


def context(a_shape, b_shape, dtype=np.float32, bias=None, op0=NONE, op1=NONE, tf32=False, constant_bias=True):
    net = NetworkDefinition()
    kind = from_numpy(np.dtype(dtype))
    inputs = [net.add_input("a", kind, a_shape), net.add_input("b", kind, b_shape)]
    infos = [TensorInfo(a_shape, kind), TensorInfo(b_shape, kind)]
    if bias is not None:
        inputs.append(net.add_constant(bias.shape, bias).get_output(0))
        infos.append(TensorInfo(bias.shape, from_numpy(bias.dtype), bias if constant_bias else None))
    layer = net.add_layer(LayerType.MATRIX_MULTIPLY, inputs, {"op0": op0, "op1": op1, "alpha": 1.0, "beta": 1.0})
    node = Node(layer.type, layer.name, layer.params, precision=layer.precision)
    return TacticContext(node, infos, [TensorInfo(layer.get_output(0).shape, kind)], "gpu", {"tf32": tf32})


def test_one_tactic_per_mode_and_heuristic_rank_with_the_cublaslt_source():
    tactics = lt_tactics()
    names = {t.name for t in tactics}
    assert names == {f"gpu:matmul:cublaslt_{mode}_h{rank}" for mode in ("fp32", "tf32", "fp16")
                     for rank in range(ALGORITHMS_PER_MODE)}
    for tactic in tactics:
        assert tactic.id == stable_tactic_id(tactic.name) and tactic_by_id(tactic.id) is tactic
        assert tactic_source_name(tactic.id) == "CUBLAS_LT"
        assert tactic.absorbs == {"activation"} and tactic.capturable and tactic.backend == "gpu"
    assert "CUBLAS_LT" in TacticSource.__doc__ and "gpu_cublaslt" in TacticSource.__doc__


def test_unavailable_library_is_a_reason_not_an_error(no_nvmath):
    reason = cublaslt_unavailable()
    assert reason and "nvmath-python" in reason
    for tactic in lt_tactics():
        assert tactic.supports(context((8, 16), (16, 4))) == reason, tactic.name


@pytest.mark.parametrize("case, reason", [
    (dict(a_shape=(8, 16), b_shape=(16, 4), dtype=np.float16), "fp32 GEMM needs"),
    (dict(a_shape=(2, 8, 16), b_shape=(3, 16, 4)), "broadcast against each other"),
    (dict(a_shape=(8, 16), b_shape=(16, 4), bias=np.ones(4, np.float32), constant_bias=False),
     "not a build-time constant"),
    (dict(a_shape=(8, 16), b_shape=(16, 4), bias=np.ones((2, 1, 4), np.float32)), "broadcasts the result"),
    (dict(a_shape=(8, 16), b_shape=(16, 4), bias=np.ones((8, 1), np.float32)), "one value per output column"),
    (dict(a_shape=(8, 16), b_shape=(16, 0)), "empty operand"),
])
def test_layers_cublaslt_cannot_take_are_refused_with_the_reason(case, reason):
    tactic = tactic_by_id(stable_tactic_id("gpu:matmul:cublaslt_fp32_h0"))
    refusal = tactic.static_refusal(context(**case))
    assert refusal is not None and reason in refusal, refusal


def test_tf32_needs_the_builder_flag_and_a_fused_residual_is_refused():
    tf32 = tactic_by_id(stable_tactic_id("gpu:matmul:cublaslt_tf32_h0"))
    assert "BuilderFlag.TF32" in tf32.static_refusal(context((8, 16), (16, 4)))
    assert tf32.static_refusal(context((8, 16), (16, 4), tf32=True)) is None
    ctx = context((8, 16), (16, 4))
    ctx.layer.epilogue = Epilogue(residual=0, activation=Activation(ActivationType.RELU))
    assert "residual" in tactic_by_id(stable_tactic_id("gpu:matmul:cublaslt_fp32_h0")).static_refusal(ctx)


VIEW_CASES = {  # name: (a shape, b shape, op0, op1)
    "2d": ((5, 7), (7, 3), NONE, NONE),
    "transposed_both": ((7, 5), (3, 7), TRANSPOSE, TRANSPOSE),
    "tall_shared_weight": ((2, 3, 5, 7), (7, 3), NONE, NONE),
    "batched": ((2, 3, 5, 7), (2, 3, 7, 4), NONE, NONE),
    "batched_b_transposed": ((4, 5, 7), (4, 3, 7), NONE, TRANSPOSE),
    "transposed_a_shared_b": ((4, 7, 5), (7, 3), TRANSPOSE, NONE),
    "broadcast_a": ((1, 5, 7), (4, 7, 3), NONE, NONE),
    "batch_of_one": ((1, 5, 7), (1, 7, 3), TRANSPOSE, NONE),
}


@pytest.mark.parametrize("name", VIEW_CASES)
def test_column_major_views_compute_the_row_major_product_in_place(name):
    """left @ right with a bias per row of the result, written to `result`, must be out = op0(a) @ op1(b) +
    bias per column, in out's own memory: the views are what cuBLASLt is given."""
    a_shape, b_shape, op0, op1 = VIEW_CASES[name]
    if name == "batch_of_one":
        a_shape = (1, 7, 5)
    a, b = RNG.standard_normal(a_shape), RNG.standard_normal(b_shape)
    ta, tb = op0 == TRANSPOSE, op1 == TRANSPOSE
    want = (a.swapaxes(-1, -2) if ta else a) @ (b.swapaxes(-1, -2) if tb else b)
    bias = RNG.standard_normal(want.shape[-1])
    want = want + bias
    out = np.zeros(want.shape)
    left, right, result = gemm_views(a, b, out, ta, tb)
    assert np.shares_memory(left, b) and np.shares_memory(right, a) and np.shares_memory(result, out)
    assert left.ndim in (2, 3) and right.ndim in (2, 3) and result.ndim in (2, 3)
    result[...] = left @ right + bias[:, None]
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation, has_bias, half, epilog, left", [
    (None, True, False, "BIAS", None),
    (None, False, False, None, None),
    (ActivationType.RELU, True, False, "RELU_BIAS", None),
    (ActivationType.RELU, False, True, "RELU", None),
    (ActivationType.GELU_TANH, True, False, "GELU_BIAS", None),
    (ActivationType.GELU_ERF, True, True, "GELU_BIAS", None),  # FP16: within its bounds as tanh
    (ActivationType.GELU_ERF, True, False, "BIAS", ActivationType.GELU_ERF),  # FP32: exact, after the GEMM
    (ActivationType.GELU_ERF, False, False, None, ActivationType.GELU_ERF),
    (ActivationType.LEAKY_RELU, True, True, "BIAS", ActivationType.LEAKY_RELU),
])
def test_epilogue_split_between_cublaslt_and_the_shared_helper(activation, has_bias, half, epilog, left):
    got_epilog, got_left = epilogue_plan(None if activation is None else Activation(activation, 0.1), has_bias,
                                         half)
    assert got_epilog == epilog
    assert (None if got_left is None else got_left.activation.type) == left
    if left is not None:
        assert got_left.activation.alpha == 0.1 and got_left.residual is None


def test_tanh_gelu_error_bound_used_to_absorb_erf_gelu_in_fp16():
    x = np.linspace(-12, 12, 2_400_001)
    exact = 0.5 * x * (1 + erf(x / np.sqrt(2)))
    approx = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    worst = np.abs(exact - approx).max()
    assert 4.5e-4 < worst <= GELU_TANH_MAX_ERROR  # too large for FP32's 1e-4 contract, small for FP16 engines
    assert worst > 1e-4


def test_a_rank_the_library_no_longer_offers_falls_back_with_a_warning_naming_the_layer():
    assert algorithm_rank(2, 5, "fc") == 2
    with pytest.warns(RuntimeWarning, match="layer 'fc'.*rank 3.*offers 2.*rank 1"):
        assert algorithm_rank(3, 2, "fc") == 1
    with pytest.raises(RuntimeError, match="layer 'fc'.*no algorithm"):
        algorithm_rank(0, 0, "fc")


def test_tactic_identity_round_trips_through_the_timing_cache():
    chosen = tactic_by_id(stable_tactic_id("gpu:matmul:cublaslt_fp16_h2"))
    other = tactic_by_id(stable_tactic_id("gpu:matmul:cublas_gemm_fp16"))
    cache = TimingCache()
    cache.update("key", {chosen.id: 0.01, other.id: 0.02}, chosen.id, tactic_source_name(chosen.id))
    entry = TimingCache.deserialize(cache.serialize()).query("key")
    assert tactic_by_id(entry["tactic"]).name == "gpu:matmul:cublaslt_fp16_h2"
    assert entry["source"] == "CUBLAS_LT" and set(entry["timings_ms"]) == {str(chosen.id), str(other.id)}


def test_tactic_identity_round_trips_through_the_plan():
    """A plan records the chosen tactic per layer and profile by id; a cuBLASLt id comes back as that tactic."""
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    x = network.add_input("x", DataType.FLOAT, (2, 8))
    w = network.add_constant((8, 4), np.ones((8, 4), np.float32)).get_output(0)
    network.mark_output(network.add_matrix_multiply(x, NONE, w, NONE).get_output(0))
    config = builder.create_builder_config()
    config.device = "cpu"
    graph, meta = deserialize_plan(builder.build_serialized_network(network, config))
    spec = next(s for s in graph.layers if s.layer.type == LayerType.MATRIX_MULTIPLY)
    tactic = tactic_by_id(stable_tactic_id("gpu:matmul:cublaslt_tf32_h1"))
    spec.tactic_id, spec.tactic_ids, spec.tactic_name, spec.tactic_names = tactic.id, [tactic.id], tactic.name, \
        [tactic.name]
    meta = {k: v for k, v in meta.items() if k != "engine_version"}
    again, _ = deserialize_plan(serialize_plan(graph, meta))
    loaded = next(s for s in again.layers if s.layer.type == LayerType.MATRIX_MULTIPLY)
    assert [tactic_by_id(t).name for t in loaded.tactic_ids] == ["gpu:matmul:cublaslt_tf32_h1"]
