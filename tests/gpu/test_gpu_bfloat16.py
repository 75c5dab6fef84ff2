"""BF16 on the GPU (uint16 storage of the bfloat16 bits, float32 compute, rounding per layer output): the same
values as the CPU engine, whose bfloat16 comes from ml_dtypes, and the conversion kernels against ml_dtypes."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import engine as trt
from engine.bfloat16 import store_rounded, to_float32
from engine.dtypes import BFLOAT16

pytestmark = pytest.mark.gpu

RNG = np.random.default_rng(11)
W = RNG.standard_normal((16, 8)).astype(np.float32)


def mlp(network: trt.NetworkDefinition) -> None:
    x = network.add_input("x", trt.DataType.FLOAT, (4, 16))
    w = network.add_constant(W.shape, W, name="w").get_output(0)
    t = network.add_matrix_multiply(x, trt.MatrixOperation.NONE, w, trt.MatrixOperation.NONE, name="mm").get_output(0)
    y = network.add_activation(t, trt.ActivationType.SIGMOID, name="act").get_output(0)
    y.name = "y"
    network.mark_output(y)


def bf16_io(network: trt.NetworkDefinition) -> None:
    x = network.add_input("x", trt.DataType.BF16, (2, 3))
    y = network.add_unary(x, trt.UnaryOperation.EXP, name="exp").get_output(0)
    y.name = "y"
    network.mark_output(y)


def build(populate, device: str, flags=()) -> trt.Engine:
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    populate(network)
    config = builder.create_builder_config()
    config.device = device
    config.builder_optimization_level = 0  # heuristic choice: the bfloat16 GEMM ranks first
    for flag in flags:
        config.set_flag(flag)
    return trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))


def test_conversion_kernels_match_ml_dtypes() -> None:
    import cupy

    x = np.concatenate([RNG.standard_normal(1000).astype(np.float32) * 100,
                        np.array([0.0, -0.0, np.inf, -np.inf, 3.4e38, 1 + 2 ** -8, 1 + 3 * 2 ** -8], np.float32)])
    bits = cupy.empty(x.shape, cupy.uint16)
    store_rounded(cupy.asarray(x), bits, cupy)
    np.testing.assert_array_equal(cupy.asnumpy(bits), x.astype(ml_dtypes.bfloat16).view(np.uint16))
    back = cupy.asnumpy(to_float32(bits, cupy))
    np.testing.assert_array_equal(back, x.astype(ml_dtypes.bfloat16).astype(np.float32))
    nan = cupy.empty(1, cupy.uint16)
    store_rounded(cupy.asarray(np.array([np.nan], np.float32)), nan, cupy)
    assert np.isnan(cupy.asnumpy(to_float32(nan, cupy)))[0]


def test_bf16_build_on_gpu_matches_the_cpu_engine() -> None:
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    gpu = build(mlp, "gpu", [trt.BuilderFlag.BF16])
    assert {row["precision"] for row in gpu.layer_info() if row["type"] != "REFORMAT"} == {"BF16"}
    y_gpu = gpu.create_execution_context().execute({"x": x})["y"]
    y_cpu = build(mlp, "cpu", [trt.BuilderFlag.BF16]).create_execution_context().execute({"x": x})["y"]
    # float32 sums in a different order may cross one rounding boundary: at most one bfloat16 ULP apart
    np.testing.assert_allclose(y_gpu, y_cpu, rtol=2 ** -7, atol=0)
    assert np.array_equal(y_gpu, y_gpu.astype(ml_dtypes.bfloat16).astype(np.float32))


def test_bf16_network_io_on_gpu() -> None:
    x = np.array([[0.0, 1.0, -2.5], [3.0, 0.125, 4.0]], dtype=ml_dtypes.bfloat16)
    y = build(bf16_io, "gpu").create_execution_context().execute({"x": x})["y"]
    assert y.dtype == BFLOAT16
    expected = np.exp(x.astype(np.float64)).astype(np.float32).astype(ml_dtypes.bfloat16)
    np.testing.assert_allclose(y.astype(np.float32), expected.astype(np.float32), rtol=2 ** -7)


def test_bfloat16_cast_conformance_cases_pass_on_gpu(monkeypatch) -> None:
    from engine.conformance.runner import Status, run_conformance

    monkeypatch.setenv("POLYX_DEVICE", "gpu")
    report = run_conformance(ops=["Cast", "CastLike"])
    cases = [r for r in report.results if "BFLOAT16" in r.name]
    assert cases and all(r.status == Status.PASSED for r in cases), [(r.name, r.message[:200]) for r in cases]


def plain_matmul(network: trt.NetworkDefinition) -> None:
    x = network.add_input("x", trt.DataType.FLOAT, (4, 16))
    w = network.add_constant(W.shape, W, name="w").get_output(0)
    y = network.add_matrix_multiply(x, trt.MatrixOperation.NONE, w, trt.MatrixOperation.NONE, name="mm").get_output(0)
    y.name = "y"
    network.mark_output(y)


def test_bf16_matmul_runs_on_cublas_bf16_storage() -> None:
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    gpu = build(plain_matmul, "gpu", [trt.BuilderFlag.BF16])
    assert {row["name"]: row["tactic"] for row in gpu.layer_info()}["mm"] == "gpu:matmul:cublas_gemm_bf16"
    y_gpu = gpu.create_execution_context().execute({"x": x})["y"]
    reference = x.astype(ml_dtypes.bfloat16).astype(np.float64) @ W.astype(ml_dtypes.bfloat16).astype(np.float64)
    expected = reference.astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_allclose(y_gpu, expected, rtol=2 ** -7, atol=0)
