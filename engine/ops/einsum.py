"""Einsum (LayerType.EINSUM) and ONNX Einsum. Param: `equation` (NumPy/ONNX einsum notation, with '...' and the
implicit output form). Shape inference parses the equation itself, so unknown (-1) dims propagate."""
from __future__ import annotations

from ..dtypes import DataType
from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import TensorInfo, broadcast_shapes, onnx_op, register_layer


def parse_equation(equation: str, num_inputs: int) -> tuple[list[str], str]:
    """(input terms, output term) with spaces removed and the implicit output made explicit."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != num_inputs:
        raise EngineError(f"einsum equation {equation!r} has {len(terms)} operands, got {num_inputs} inputs")
    if not arrow:
        letters = "".join(terms).replace("...", "")
        single = sorted(ch for ch in set(letters) if letters.count(ch) == 1)
        rhs = ("..." if "..." in lhs else "") + "".join(single)
    return terms, rhs


def _infer_einsum(layer, inputs: list[TensorInfo | None]):
    terms, rhs = parse_equation(layer.params["equation"], len(inputs))
    sizes: dict[str, int] = {}
    ellipses = []
    for term, info in zip(terms, inputs):
        letters = term.replace("...", "")
        if "..." in term:
            head, tail = term.split("...")
            rank_e = len(info.shape) - len(letters)
            ellipses.append(info.shape[len(head):len(head) + rank_e])
            dims = list(info.shape[:len(head)]) + list(info.shape[len(head) + rank_e:])
            letters = head + tail
        else:
            dims = list(info.shape)
        if len(dims) != len(letters):
            raise EngineError(f"einsum term {term!r} does not match an input of shape {info.shape}")
        for ch, d in zip(letters, dims):
            known = sizes.get(ch, 1)
            if known > 1 and d > 1 and known != d:
                raise EngineError(f"einsum label {ch!r} has sizes {known} and {d}")
            sizes[ch] = known if known > 1 or d == 1 else d
    ellipsis = list(broadcast_shapes(*ellipses)) if ellipses else []
    head, has_ellipsis, tail = rhs.partition("...")
    shape = [sizes[ch] for ch in head] + (ellipsis if has_ellipsis else []) + [sizes[ch] for ch in tail]
    return [(tuple(shape), inputs[0].dtype)]


def _compute_einsum(layer, inputs, xp):
    dtype = inputs[0].dtype
    arrays = [a.astype(xp.float32) for a in inputs] if dtype == xp.float16 else inputs
    y = xp.einsum(layer.params["equation"], *arrays, optimize=len(arrays) > 1)
    return [xp.asarray(y).astype(dtype, copy=False)]


register_layer(LayerType.EINSUM, _infer_einsum, _compute_einsum)

EINSUM_TYPES = (DataType.FLOAT, DataType.HALF, DataType.BF16, DataType.DOUBLE,
                DataType.INT8, DataType.INT16, DataType.INT32,
                DataType.INT64, DataType.UINT8, DataType.UINT16, DataType.UINT32, DataType.UINT64)


@onnx_op("Einsum")
def import_einsum(ctx):
    inputs = ctx.inputs()
    for t in inputs:
        if t.dtype not in EINSUM_TYPES:
            ctx.unsupported(f"input '{t.name}' has data type {t.dtype.value}, which Einsum does not take",
                            UnsupportedCategory.DTYPE)
    equation = ctx.attr("equation")
    try:
        parse_equation(equation, len(inputs))
    except EngineError as exc:
        ctx.unsupported(str(exc), UnsupportedCategory.OTHER)
    layer = ctx.network.add_layer(LayerType.EINSUM, inputs, {"equation": equation}, name=ctx.layer_name())
    return [layer.get_output(0)]
