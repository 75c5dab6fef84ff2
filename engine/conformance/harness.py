"""Helpers for tests and the conformance runner: run an ONNX model through the whole engine (parse → build → plan
→ runtime) in one call. They live here, outside the engine's production modules, because they tie the builder to
the runtime, which the builder itself must not import."""
from __future__ import annotations

import os

import numpy as np
import onnx

from ..builder import Builder
from ..config import BuilderFlag
from ..errors import ParseError
from ..graph import shape_input_names
from ..ir import graph_from_network
from ..logger import Logger
from ..network import NetworkDefinition
from ..onnx_parser import OnnxParser
from ..runtime import Engine, Runtime


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


def build_engine_for_feeds(network: NetworkDefinition, feeds: dict[str, np.ndarray], logger: Logger | None = None,
                           **config_options) -> Engine:
    """One profile whose min = opt = max are the feeds' shapes; options set config attributes
    (`fp16=True` sets the FP16 flag)."""
    logger = logger or Logger(Logger.ERROR)
    builder = Builder(logger)
    config = builder.create_builder_config()
    config.builder_optimization_level = config_options.pop("optimization_level", 0)
    config.device = config_options.pop("device", None)
    if config_options.pop("fp16", False):
        config.set_flag(BuilderFlag.FP16)
    for key, value in config_options.items():
        setattr(config, key, value)
    profile = builder.create_optimization_profile()
    shape_names = shape_input_names(graph_from_network(network))
    for tensor in network.inputs:
        if tensor.name in feeds and (tensor.shape is None or any(d < 0 for d in tensor.shape)):
            shape = np.shape(feeds[tensor.name])
            profile.set_shape(tensor.name, shape, shape, shape)
        if tensor.name in feeds and tensor.name in shape_names:
            value = np.asarray(feeds[tensor.name]).ravel().tolist()
            profile.set_shape_input(tensor.name, value, value, value)
    config.add_optimization_profile(profile)
    return Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))


def run_onnx(model, feeds: dict[str, np.ndarray], **build_options) -> dict[str, np.ndarray]:
    """Parse, build and execute `model` on `feeds`; returns {output name: array}."""
    network = parse_onnx(model)
    engine = build_engine_for_feeds(network, feeds, **build_options)
    context = engine.create_execution_context()
    return context.execute(feeds)
