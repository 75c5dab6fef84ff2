"""Test-suite wide hooks: tests marked `gpu` are skipped, with the reason, where CuPy or a CUDA device is missing
(CI has neither), so nothing GPU-only runs or is imported there."""
from __future__ import annotations

import pytest

from engine.backends import gpu_available


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU with CuPy (CuPy is not installed or finds no device)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
