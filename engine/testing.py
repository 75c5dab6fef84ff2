"""Helpers for tests: run an ONNX model through the whole engine (parse → build → plan → runtime) in one call."""
from __future__ import annotations

import os

import numpy as np
import onnx

from .errors import ParseError
from .logger import Logger
from .network import NetworkDefinition
from .onnx_parser import OnnxParser


def parse_onnx(model: onnx.ModelProto | bytes | str | os.PathLike, logger: Logger | None = None) -> NetworkDefinition:
    """Parse a model into a new network; raises ParseError listing every parser error."""
    network = NetworkDefinition()
    parser = OnnxParser(network, logger or Logger(Logger.INTERNAL_ERROR))
    if isinstance(model, onnx.ModelProto):
        ok = parser.parse_model(model)
    elif isinstance(model, bytes):
        ok = parser.parse(model)
    else:
        ok = parser.parse_from_file(model)
    if not ok:
        raise ParseError("\n".join(parser.get_error(i).desc for i in range(parser.num_errors)))
    return network


def run_onnx(model, feeds: dict[str, np.ndarray], **build_options) -> dict[str, np.ndarray]:
    """Parse, build and execute `model` on `feeds`; returns {output name: array}."""
    from .builder import build_engine_for_feeds

    network = parse_onnx(model)
    engine = build_engine_for_feeds(network, feeds, **build_options)
    context = engine.create_execution_context()
    return context.execute(feeds)
