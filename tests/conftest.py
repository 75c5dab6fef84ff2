"""Test-suite wide hooks.

- Tests marked `gpu` are skipped, with the reason, where CuPy or a CUDA device is missing (CI has neither), so
  nothing GPU-only runs or is imported there.
- Models the tests build are read by onnxruntime. onnx 1.23 writes IR version 14, which the onnxruntime on the
  GPU machine (1.30) refuses, so test models are written with IR version 13 at most.
- Every build in the suite checks the builder graph's invariants after each pass (POLYX_LINT_IR=1), so a pass
  that breaks the graph fails the test that built through it, naming the pass.
"""
from __future__ import annotations

import os

import onnx
import pytest

from engine.backends import gpu_available

os.environ.setdefault("POLYX_LINT_IR", "1")
TEST_IR_VERSION = min(onnx.IR_VERSION, 13)
_make_model = onnx.helper.make_model


def _make_model_readable_by_older_onnxruntime(graph, **kwargs):
    kwargs.setdefault("ir_version", TEST_IR_VERSION)
    return _make_model(graph, **kwargs)


onnx.helper.make_model = _make_model_readable_by_older_onnxruntime


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU with CuPy (CuPy is not installed or finds no device)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _plugins_stay_in_their_test():
    """Plugins a test registers (directly or through `--plugins`) are removed after it, so a later test sees the
    registry as it was (e.g. the example custom op unsupported again)."""
    import engine
    from polyx import plugin_modules

    registry = engine.get_plugin_registry()
    before = set(registry.plugin_creator_list)
    loaded = dict(plugin_modules.loaded_modules())
    yield
    for cls in registry.all_plugins:
        if (str(cls.plugin_namespace), str(cls.plugin_type), str(cls.plugin_version)) not in before:
            registry.deregister(cls)
    plugin_modules.forget_modules_loaded_since(loaded)
