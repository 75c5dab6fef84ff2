"""Parsing `name:shape:dtype` tensor specs and `key=value` attributes from the command line."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

import numpy as np
import onnx

from .errors import SurgeonError

AUTO = "auto"
_DIM = re.compile(r"^-?\d+$|^[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class TensorSpec:
    """A tensor named on the command line; `shape` / `dtype` None means "infer it"."""

    name: str
    shape: tuple[int | str | None, ...] | None = None
    dtype: np.dtype | None = None


def parse_shape(text: str, option: str) -> tuple[int | str | None, ...] | None:
    """`[1,3,224,224]` (a name or -1 marks a dynamic dim), `1x3x224x224`, `[]` for a scalar, or `auto`."""
    text = text.strip()
    if text == AUTO:
        return None
    if text.startswith("[") and text.endswith("]"):
        body = text[1:-1]
    elif re.fullmatch(r"\d+(x\d+)*", text):
        body = text.replace("x", ",")
    else:
        raise SurgeonError(f"{option}: malformed shape '{text}' (expected e.g. [1,3,224,224], 1x3x224x224 or auto)")
    dims: list[int | str] = []
    for part in filter(None, (p.strip() for p in body.split(","))):
        if not _DIM.match(part):
            raise SurgeonError(f"{option}: malformed dimension '{part}' in shape '{text}'")
        dims.append(int(part) if part.lstrip("-").isdigit() else part)
    return tuple(None if d == -1 else d for d in dims)


def parse_dtype(text: str, option: str) -> np.dtype | None:
    text = text.strip()
    if text == AUTO:
        return None
    upper = text.upper()
    if upper in onnx.TensorProto.DataType.keys():
        return onnx.helper.tensor_dtype_to_np_dtype(onnx.TensorProto.DataType.Value(upper))
    try:
        return np.dtype(text)
    except TypeError:
        raise SurgeonError(f"{option}: unknown data type '{text}' (e.g. float32, float16, int64, bool)") from None


def parse_tensor_spec(text: str, option: str, with_shape: bool = True) -> TensorSpec:
    """`name`, `name:dtype` or (with_shape) `name:shape` / `name:shape:dtype`; omitted parts are `auto`."""
    parts = text.rsplit(":", 2 if with_shape else 1)
    name = parts[0]
    if not name:
        raise SurgeonError(f"{option}: empty tensor name in '{text}'")
    shape = dtype = None
    rest = parts[1:]
    if with_shape and len(rest) == 2:
        shape, dtype = parse_shape(rest[0], option), parse_dtype(rest[1], option)
    elif with_shape and len(rest) == 1:
        if rest[0].startswith("[") or rest[0] == AUTO or re.match(r"^\d", rest[0]):
            shape = parse_shape(rest[0], option)
        else:
            dtype = parse_dtype(rest[0], option)
    elif rest:
        dtype = parse_dtype(rest[0], option)
    return TensorSpec(name, shape, dtype)


def parse_shape_override(text: str, option: str = "--override-input-shapes") -> tuple[str, tuple]:
    """`name:[1,16]` for input shape overrides."""
    name, sep, shape_text = text.rpartition(":")
    if not sep or not name:
        raise SurgeonError(f"{option}: expected name:[dims], got '{text}'")
    shape = parse_shape(shape_text, option)
    if shape is None:
        raise SurgeonError(f"{option}: '{text}' needs explicit dims, not auto")
    return name, shape


def parse_attribute(text: str, option: str = "--attrs") -> tuple[str, object]:
    """`key=value`: value read as a Python literal (int, float, list, quoted string), else kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SurgeonError(f"{option}: expected key=value, got '{text}'")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    if isinstance(parsed, tuple):
        parsed = list(parsed)
    if not isinstance(parsed, (int, float, str, list)) or isinstance(parsed, bool):
        parsed = int(parsed) if isinstance(parsed, bool) else value
    return key, parsed
