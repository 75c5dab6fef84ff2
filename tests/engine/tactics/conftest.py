"""Fixtures shared by the tactic tests."""
import sys

import pytest

from engine.backends import cudnn_frontend


@pytest.fixture
def no_cudnn(monkeypatch):
    """`import cudnn` fails, as on a machine without nvidia-cudnn-frontend (None in sys.modules: ImportError); the
    frontend probe is asked again before and after."""
    monkeypatch.setitem(sys.modules, "cudnn", None)
    cudnn_frontend._probe.cache_clear()
    yield
    cudnn_frontend._probe.cache_clear()
