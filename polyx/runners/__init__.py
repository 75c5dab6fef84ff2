"""Runners: one model on one backend behind activate() / infer(feeds) / deactivate() (Polygraphy's interface)."""
from .base import Runner
from .engine_runner import EngineRunner
from .onnxrt_runner import OnnxrtRunner

__all__ = ["Runner", "EngineRunner", "OnnxrtRunner"]
