"""OnnxParserRefitter (TensorRT names): the named weights of a refittable engine, read from an ONNX file.

The file is imported with the same parser that built the engine, so weights the parser derives from several
initializers (BatchNormalization's folded scale and shift) are derived again from the file's values. Every
weight of the engine must be in the file with its dtype and shape; the Refitter's checks name any that is not.
Everything else must be what the engine was built from (the plan's network digest): a file whose graph, integer
constants or parse-time values (a Clip bound) differ is refused, since a refit would silently keep the old ones.
"""
from __future__ import annotations

import os

from .enums import LayerType
from .errors import EngineError, RefitError
from .ir import graph_from_network
from .logger import Logger
from .network import NetworkDefinition
from .onnx_parser import OnnxParser
from .refittable import mark_refittable_weights, network_digest
from .refitter import Refitter


class OnnxParserRefitter:
    def __init__(self, refitter: Refitter, logger: Logger | None = None):
        self.refitter = refitter
        self.logger = logger or refitter.logger

    def refit_from_file(self, path: str | os.PathLike) -> bool:
        """Set every engine weight found in the model at `path` on the refitter (then call
        `refitter.refit_cuda_engine()`). Raises RefitError naming the file (and the weight), and then sets nothing."""
        path = os.fspath(path)
        network = NetworkDefinition()
        parser = OnnxParser(network, self.logger)
        if not parser.parse_from_file(path):
            raise RefitError(f"{path}: cannot import the model to refit from: {parser.errors_text()}")
        values = {layer.name: layer.params["weights"] for layer in network.layers if layer.type == LayerType.CONSTANT}
        wanted = self.refitter.get_all_weights()
        absent = [name for name in wanted if name not in values]
        if absent:
            raise RefitError(f"{path}: the model has no weights named {', '.join(absent[:5])}"
                             f"{', ...' if len(absent) > 5 else ''} ({len(absent)} of the engine's {len(wanted)}): "
                             "is it the model the engine was built from?")
        checked = {}
        for name in wanted:
            try:
                checked[name] = self.refitter.check_weights(name, values[name])
            except RefitError as exc:
                raise RefitError(f"{path}: {exc}") from None
        try:
            network.validate()
            graph = graph_from_network(network)
        except EngineError as exc:
            raise RefitError(f"{path}: cannot import the model to refit from: {exc}") from None
        mark_refittable_weights(graph)
        if network_digest(graph) != self.refitter.engine.refit_table.network_digest:
            raise RefitError(f"{path}: the model differs from the one engine '{self.refitter.engine.name}' was "
                             "built from in more than its refittable weights (its graph, a shape or other integer "
                             "constant, a quantization scale or a value the parser reads into layer parameters "
                             "such as a Clip bound): a refit cannot apply that; rebuild the engine")
        for name, array in checked.items():  # set only once the whole file is accepted
            self.refitter.set_named_weights(name, array)
        return True
