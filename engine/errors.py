"""Exception types raised across the engine. Each carries a message that names the file, node, layer or tensor."""


class EngineError(Exception):
    """Base class for every error the engine raises on purpose (user mistakes and unsupported input)."""


class ParseError(EngineError):
    """An ONNX model could not be imported; `node` and `op` name the culprit when known."""

    def __init__(self, message: str, node: str | None = None, op: str | None = None):
        self.node = node
        self.op = op
        prefix = f"node '{node}' ({op}): " if node is not None else (f"op {op}: " if op else "")
        super().__init__(prefix + message)


class UnsupportedError(ParseError):
    """The parser met an op, attribute value or dtype it does not support."""


class ShapeError(EngineError):
    """Shapes do not agree (at build time, or an input shape outside the optimization profile)."""


class BuildError(EngineError):
    """The builder could not produce an engine (invalid network, tactic selection failure, ...)."""


class PlanFormatError(EngineError):
    """A serialized plan is corrupted, truncated, or of another format version / backend."""


class ExecutionError(EngineError):
    """An execution context was used wrongly (missing input, wrong dtype, unset shape, ...)."""
