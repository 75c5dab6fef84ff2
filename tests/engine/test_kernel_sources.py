"""The CUDA kernel sources compile with NVRTC (no GPU needed: the NVRTC library alone, from the
nvidia-cuda-nvrtc wheel of the test extras) and define every entry point the GPU tactics launch."""
from __future__ import annotations

import ctypes
import re
from pathlib import Path

import pytest

from engine.backends.kernel_sources import cuda_kernel_names, kernel_source

# Entry points launched by name from engine/tactics/gpu_*.py, per module.
LAUNCHED = {
    "attention": ["flash_attention_f32", "flash_attention_f16", "fill_unweighted_rows_u16"],
    "conv_gemm": [f"{base}_{t}" for base in ("im2col_kp", "im2col_rows", "bias_act_nchw", "bias_act_rows")
                  for t in ("f32", "f16")],
    "gpu_kernels": ["depthwise_conv2d", "implicit_gemm_conv2d"] +
                   [f"{base}_{t}" for base in ("softmax_rows", "layer_norm_rows", "masked_softmax_rows",
                                               "residual_layer_norm_rows") for t in ("f32", "f16")] +
                   ["masked_softmax_rows_f32_to_f16"],
    "int8": ["im2col_int8", "im2col_nhwc_int8", "im2col_nhwc_int8_tiled", "im2col_nhwc_int8_x16", "pad_rows_int8",
             "grouped_conv_int8"] +
            [f"int8_epilogue_{t}" for t in ("f32", "f16", "i8")] + [f"quantize_int8_{t}" for t in ("f32", "f16")],
    "pooling": [f"{base}_{t}" for base in ("max_pool2d", "global_avg_pool", "max_pool2d_nhwc", "global_avg_pool_nhwc")
                for t in ("f32", "f16")] + ["max_pool2d_i8", "max_pool2d_nhwc_i8", "max_pool2d_nhwc_i8x4",
                                               "max_pool2d_nhwc_f16x4"],
    "reformat": [f"transpose_{s}_{d}" for s, d in (("f32", "f32"), ("f32", "f16"), ("f16", "f32"), ("f16", "f16"),
                                                   ("i8", "i8"))],
    "recurrent": ["gru_reset"] + [f"{base}_{t}" for base in ("lstm_step", "gru_step", "rnn_step")
                                  for t in ("f32", "f16")],
}


@pytest.fixture(scope="module")
def nvrtc() -> ctypes.CDLL:
    package = pytest.importorskip("nvidia.cuda_nvrtc", reason="the nvidia-cuda-nvrtc wheel is not installed")
    libraries = sorted(Path(next(iter(package.__path__))).glob("lib/libnvrtc.so*"))
    if not libraries:
        pytest.skip("the nvidia-cuda-nvrtc wheel holds no libnvrtc")
    library = ctypes.CDLL(str(libraries[0]))
    library.nvrtcGetErrorString.restype = ctypes.c_char_p
    return library


def compile_to_ptx(nvrtc: ctypes.CDLL, name: str, source: str | None = None) -> str:
    program = ctypes.c_void_p()
    source = kernel_source(name) if source is None else source
    assert nvrtc.nvrtcCreateProgram(ctypes.byref(program), source.encode(), f"{name}.cu".encode(),
                                    0, None, None) == 0
    try:
        options = [b"-std=c++14", b"--gpu-architecture=compute_90"]
        status = nvrtc.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
        size = ctypes.c_size_t()
        nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetProgramLog(program, log)
        assert status == 0, f"{name}.cu: {nvrtc.nvrtcGetErrorString(status).decode()}\n{log.value.decode()}"
        nvrtc.nvrtcGetPTXSize(program, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetPTX(program, ptx)
        return ptx.value.decode()
    finally:
        nvrtc.nvrtcDestroyProgram(ctypes.byref(program))


def test_every_cuda_module_is_listed():
    assert sorted(LAUNCHED) == cuda_kernel_names()


@pytest.mark.parametrize("name", sorted(LAUNCHED))
def test_kernels_compile_and_define_the_launched_entry_points(nvrtc, name):
    entries = set(re.findall(r"\.entry\s+(\w+)\(", compile_to_ptx(nvrtc, name)))
    assert set(LAUNCHED[name]) <= entries, sorted(entries)


def test_local_includes_are_inlined():
    source = kernel_source("conv_gemm")
    assert '#include "' not in source and "typedef unsigned short half16;" in source


def test_generated_pointwise_kernels_compile(nvrtc):
    """Every step kind the pointwise fusion emits, with the literal forms of its parameters (infinities, NaN,
    exponents), compiles; the body is wrapped as CuPy's ElementwiseKernel wraps it (elements of type T)."""
    from engine.enums import ActivationType, ElementWiseOperation, UnaryOperation
    from engine.passes.pointwise_fusion import FLOAT_ACTIVATIONS, FLOAT_BINARY, FLOAT_UNARY
    from engine.tactics.gpu_fused_pointwise import kernel_body
    from engine.tactics.gpu_pointwise import KERNEL_PREAMBLE

    steps = [{"layer": "ELEMENTWISE", "params": {"op": op.value}, "args": [["input", 0], ["input", 1]]}
             for op in sorted(FLOAT_BINARY)]
    steps += [{"layer": "UNARY", "params": {"op": op.value}, "args": [["step", len(steps) - 1]]}
              for op in sorted(FLOAT_UNARY)]
    for kind, (alpha, beta) in zip(sorted(FLOAT_ACTIVATIONS), [(0.1, float("inf")), (float("nan"), -1e-30)] * 99):
        steps.append({"layer": "ACTIVATION", "params": {"activation_type": kind.value, "alpha": alpha, "beta": beta},
                      "args": [["step", len(steps) - 1]]})
    assert {ElementWiseOperation(s["params"]["op"]) for s in steps if s["layer"] == "ELEMENTWISE"} == FLOAT_BINARY
    assert len([s for s in steps if s["layer"] == "UNARY"]) == len(FLOAT_UNARY)
    assert {ActivationType(s["params"]["activation_type"]) for s in steps if s["layer"] == "ACTIVATION"} == \
        FLOAT_ACTIVATIONS and UnaryOperation.ERF in FLOAT_UNARY
    body = kernel_body(steps, 2)
    assert body is not None
    source = (f"typedef float T;\n{KERNEL_PREAMBLE}\nextern \"C\" __global__ void pointwise(const T* p0, const T* p1, "
              f"T* out) {{\n  int i = blockIdx.x * blockDim.x + threadIdx.x;\n  T x0 = p0[i], x1 = p1[i], y;\n"
              f"{body}\n  out[i] = y;\n}}\n")
    assert ".entry pointwise(" in compile_to_ptx(nvrtc, "pointwise", source)
