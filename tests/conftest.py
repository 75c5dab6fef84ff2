"""Tests marked `gpu` need CuPy and a usable CUDA device; elsewhere they are skipped with the reason."""
from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    from engine.backends import gpu_available

    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU with CuPy (none usable here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
