"""ReverseSequence layer; ONNX ReverseSequence.

Inputs (x, sequence_lens); params `batch_axis` and `time_axis` (0 or 1, different). For batch b, the first
sequence_lens[b] steps along the time axis are reversed and the rest are copied unchanged.
"""
from __future__ import annotations

from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import onnx_op, register_layer, same_as_input


def _compute_reverse_sequence(layer, inputs, xp):
    x, lengths = inputs
    batch_axis, time_axis = layer.params["batch_axis"], layer.params["time_axis"]
    steps = x.shape[time_axis]
    lengths = lengths.astype(xp.int64).reshape(-1)
    time = xp.arange(steps, dtype=xp.int64)
    # source[b, t]: where output step t of batch b reads from
    source = xp.where(time[None, :] < lengths[:, None], lengths[:, None] - 1 - time[None, :], time[None, :])
    if batch_axis > time_axis:
        source = source.T
    source = source.reshape(source.shape + (1,) * (x.ndim - 2))
    return [xp.take_along_axis(x, xp.broadcast_to(source, x.shape), axis=time_axis)]


def _infer_reverse_sequence(layer, inputs):
    if sorted((layer.params["batch_axis"], layer.params["time_axis"])) != [0, 1]:
        raise EngineError("ReverseSequence needs batch_axis and time_axis to be 0 and 1")
    return same_as_input(0)(layer, inputs)


register_layer(LayerType.REVERSE_SEQUENCE, _infer_reverse_sequence, _compute_reverse_sequence)


@onnx_op("ReverseSequence")
def import_reverse_sequence(ctx):
    params = {"batch_axis": int(ctx.attr("batch_axis", 1)), "time_axis": int(ctx.attr("time_axis", 0))}
    if sorted(params.values()) != [0, 1]:
        ctx.unsupported(f"batch_axis/time_axis {params} must be 0 and 1 (in either order)", UnsupportedCategory.OTHER)
    return [ctx.network.add_layer(LayerType.REVERSE_SEQUENCE, [ctx.input(0), ctx.input(1)], params,
                                  name=ctx.layer_name()).get_output(0)]
