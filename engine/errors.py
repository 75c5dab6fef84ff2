"""Exception types raised across the engine. Each carries a message that names the file, node, layer or tensor."""
from __future__ import annotations

from enum import Enum


class UnsupportedCategory(str, Enum):
    """Why the parser cannot take a node, as a field: `inspect capability` and surgeon partitioning report it
    instead of guessing from the message's wording."""

    OPERATOR = "operator"            # no importer for the op type (or its domain)
    OPSET = "opset"                  # the op exists, but not at the model's opset
    ATTRIBUTE = "attribute"          # an attribute value or mode that is not implemented, or a needed one missing
    DTYPE = "dtype"                  # a data type the op (or the engine) does not take
    DYNAMIC_SHAPE = "dynamic shape"  # needs a shape or value known when the model is parsed
    OTHER = "other"                  # anything else, e.g. a node that is inconsistent with its inputs


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
    """The parser met an op, attribute value or dtype it does not support; `category` says which kind of problem."""

    def __init__(self, message: str, node: str | None = None, op: str | None = None, *,
                 category: UnsupportedCategory):
        self.category = UnsupportedCategory(category)
        super().__init__(message, node, op)


class ShapeError(EngineError):
    """Shapes do not agree (at build time, or an input shape outside the optimization profile)."""


class DataDependentShapeError(ShapeError):
    """A tensor's shape depends on values computed while the network runs (a loop's data-dependent trip count, a
    conditional whose branches differ in shape): it cannot be planned before execution."""


class BuildError(EngineError):
    """The builder could not produce an engine (invalid network, tactic selection failure, ...)."""


class PlanFormatError(EngineError):
    """A serialized plan is corrupted, truncated, or of another format version / backend."""


class ExecutionError(EngineError):
    """An execution context was used wrongly (missing input, wrong dtype, unset shape, ...)."""


class RefitError(EngineError):
    """A refit was refused: the engine is not refittable, a weight name is unknown or its dtype/shape differs, or
    weights are missing."""


class OutputFileError(EngineError):
    """An output path cannot be written: its folder is missing, it is a directory, or it is one of the command's
    own inputs (a model, its external data, a data file, a plan), which no command ever overwrites."""
