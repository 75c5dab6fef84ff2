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
    "conv_gemm": [f"{base}_{t}" for base in ("im2col_kp", "im2col_rows", "bias_act_nchw", "bias_act_rows")
                  for t in ("f32", "f16")],
    "gpu_kernels": ["depthwise_conv2d", "implicit_gemm_conv2d"] +
                   [f"{base}_{t}" for base in ("softmax_rows", "layer_norm_rows") for t in ("f32", "f16")],
    "pooling": [f"{base}_{t}" for base in ("max_pool2d", "global_avg_pool") for t in ("f32", "f16")],
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


def compile_to_ptx(nvrtc: ctypes.CDLL, name: str) -> str:
    program = ctypes.c_void_p()
    assert nvrtc.nvrtcCreateProgram(ctypes.byref(program), kernel_source(name).encode(), f"{name}.cu".encode(),
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
