"""Fixtures shared by the tactic tests."""
import sys

import pytest

from engine.backends import cudnn_frontend
from engine.tactics import gpu_cudnn_attention, gpu_cudnn_conv
from engine.tactics.gpu_cublaslt import cublaslt_unavailable


@pytest.fixture
def no_cudnn(monkeypatch):
    """`import cudnn` fails, as on a machine without nvidia-cudnn-frontend (None in sys.modules: ImportError); the
    frontend probe is asked again before and after."""
    monkeypatch.setitem(sys.modules, "cudnn", None)
    cudnn_frontend._probe.cache_clear()
    yield
    cudnn_frontend._probe.cache_clear()


@pytest.fixture
def no_nvmath(monkeypatch):
    """Importing nvmath (and the submodules the cuBLASLt probe imports) fails, as on a machine without
    nvmath-python; the probe is asked again before and after."""
    for module in ("nvmath", "nvmath.bindings", "nvmath.linalg", "nvmath.linalg.advanced"):
        monkeypatch.setitem(sys.modules, module, None)
    cublaslt_unavailable.cache_clear()
    yield
    cublaslt_unavailable.cache_clear()


@pytest.fixture
def host_addresses(monkeypatch):
    """NumPy arrays stand in for CuPy ones: a "device address" is the host address, in every module that asks."""
    for module in (cudnn_frontend, gpu_cudnn_conv, gpu_cudnn_attention):
        monkeypatch.setattr(module, "device_address", lambda array: array.ctypes.data)
