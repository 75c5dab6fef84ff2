"""Non-maximum suppression (LayerType.NMS, `network.add_nms`), TensorRT's INMSLayer with ONNX semantics.

Inputs: boxes [batch, boxes, 4], scores [batch, classes, boxes], then optional max_output_boxes_per_class (integer
scalar, absent: 0 boxes as in ONNX), iou_threshold and score_threshold (float scalars). Params:
`bounding_box_format` CORNER_PAIRS ([y1, x1, y2, x2], any two opposite corners) or CENTER_SIZES ([x_center,
y_center, width, height]) and `topk_box_limit` (None: every box is a candidate; TensorRT's parser sets 2000 by
default, which can drop boxes ONNX would keep, so the ONNX importer leaves it unset).
Outputs: selected indices INT64 [count, 3] of (batch, class, box) rows, by batch, then class, then descending
score (ties: lower box index first); and count as an INT32 scalar. `count` is data-dependent; its upper bound is
batch x classes x min(boxes, max_output_boxes_per_class when known, topk_box_limit).

Per batch and class: boxes scoring above score_threshold (all of them when it is absent) are visited by
descending score; a box is kept unless its IoU with a kept box exceeds iou_threshold. IoU is computed in the
boxes' dtype, as onnxruntime does. Candidates go in tiles: IoUs against the boxes kept so far and within the
tile are computed with `xp` (CuPy on the GPU); the greedy scan of a tile runs on the host over those, where the
selected count has to go anyway.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import DataType
from ..enums import BoundingBoxFormat, LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import onnx_op, register_layer
from .shape_values import host_scalar

BOX_FORMATS = (BoundingBoxFormat.CORNER_PAIRS, BoundingBoxFormat.CENTER_SIZES)  # by ONNX center_point_box


def _check_shapes(boxes, scores) -> None:
    if len(boxes) != 3 or boxes[2] not in (4, -1):
        raise EngineError(f"NMS boxes must have shape [batch, boxes, 4], got {list(boxes)}")
    if len(scores) != 3:
        raise EngineError(f"NMS scores must have shape [batch, classes, boxes], got {list(scores)}")
    for name, a, b in (("batch", boxes[0], scores[0]), ("boxes", boxes[1], scores[2])):
        if a >= 0 and b >= 0 and a != b:
            raise EngineError(f"NMS boxes {list(boxes)} and scores {list(scores)} disagree on the {name} dim")


def _center_sizes(layer) -> bool:
    """Whether boxes are [x_center, y_center, width, height] rather than corner pairs."""
    value = layer.params["bounding_box_format"]
    if value not in {f.value for f in BoundingBoxFormat}:
        raise EngineError(f"NMS bounding_box_format must be one of {[f.value for f in BoundingBoxFormat]}, "
                          f"got {value!r}")
    return value == BoundingBoxFormat.CENTER_SIZES


def _topk_limit(layer) -> int | None:
    """The most candidates per batch and class (None: all of them)."""
    limit = layer.params["topk_box_limit"]
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise EngineError(f"NMS topk_box_limit must be a positive integer or None, got {limit!r}")
    return limit


def _infer(layer, inputs):
    boxes, scores = inputs[0], inputs[1]
    _topk_limit(layer)
    _center_sizes(layer)
    _check_shapes(boxes.shape, scores.shape)
    if boxes.dtype != scores.dtype or not boxes.dtype.is_floating:
        raise EngineError(f"NMS boxes and scores must be the same float type, got {boxes.dtype.value} and "
                          f"{scores.dtype.value}")
    return [((-1, 3), DataType.INT64), ((), DataType.INT32)]


def _upper_bound(layer, inputs):
    boxes, scores = inputs[0].shape, inputs[1].shape
    per_class = boxes[1]
    limit = inputs[2] if len(inputs) > 2 else None
    if limit is None:
        per_class = 0
    elif limit.value is not None and limit.value.size:
        per_class = min(per_class, max(int(limit.value.reshape(-1)[0]), 0))
    if _topk_limit(layer) is not None:
        per_class = min(per_class, _topk_limit(layer))
    return [((boxes[0] * scores[1] * per_class, 3), DataType.INT64), ((), DataType.INT32)]


def _to_host(array) -> np.ndarray:
    return array.get() if hasattr(array, "get") else np.asarray(array)


def _optional_scalar(inputs, index: int):
    value = inputs[index] if len(inputs) > index else None
    if value is None or value.size == 0:
        return None
    return host_scalar(value)


# Candidates are scanned in tiles of this many boxes: memory and work grow with candidates x kept boxes, not with
# candidates squared (SSDlite's single NMS call sees 27,000 candidates).
TILE = 256


def _corners(boxes, center_sizes: bool, xp):
    """[low y, low x, high y, high x] of each box (rows), whatever corners or orientation it was given with."""
    if center_sizes:
        x, y, half_w, half_h = boxes[:, 0], boxes[:, 1], boxes[:, 2] / 2, boxes[:, 3] / 2
        return xp.stack([y - half_h, x - half_w, y + half_h, x + half_w], axis=1)
    y1, x1, y2, x2 = (boxes[:, i] for i in range(4))
    return xp.stack([xp.minimum(y1, y2), xp.minimum(x1, x2), xp.maximum(y1, y2), xp.maximum(x1, x2)], axis=1)


def _overlaps(rows, cols, iou_threshold, xp) -> np.ndarray:
    """Host bool matrix: [i, j] when box rows[i] and box cols[j] (corner form) overlap by more than the
    threshold. Boxes without area or intersection never suppress, as in onnxruntime."""
    inter_h = xp.minimum(rows[:, None, 2], cols[None, :, 2]) - xp.maximum(rows[:, None, 0], cols[None, :, 0])
    inter_w = xp.minimum(rows[:, None, 3], cols[None, :, 3]) - xp.maximum(rows[:, None, 1], cols[None, :, 1])
    inter = inter_h * inter_w
    area_rows = (rows[:, 2] - rows[:, 0]) * (rows[:, 3] - rows[:, 1])
    area_cols = (cols[:, 2] - cols[:, 0]) * (cols[:, 3] - cols[:, 1])
    union = area_rows[:, None] + area_cols[None, :] - inter
    valid = (inter_h > 0) & (inter_w > 0) & (area_rows[:, None] > 0) & (area_cols[None, :] > 0) & (union > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / xp.where(union > 0, union, 1)
    return _to_host(valid & (iou > rows.dtype.type(iou_threshold)))


def _greedy(corners, iou_threshold: float, limit: int, xp) -> list[int]:
    """Positions (in the given, best-first order) of the boxes greedy NMS keeps, at most `limit` of them: each
    tile is first checked against the boxes kept so far, then scanned in order against itself."""
    kept: list[int] = []
    kept_corners = corners[:0]
    for start in range(0, corners.shape[0], TILE):
        tile = corners[start:start + TILE]
        alive = np.ones(tile.shape[0], dtype=bool)
        if kept:
            # Only kept boxes that reach into the tile's bounding box can suppress one of its boxes.
            low, high = tile[:, :2].min(axis=0), tile[:, 2:].max(axis=0)
            near = kept_corners[(kept_corners[:, 0] < high[0]) & (kept_corners[:, 2] > low[0])
                                & (kept_corners[:, 1] < high[1]) & (kept_corners[:, 3] > low[1])]
            alive &= ~_overlaps(tile, near, iou_threshold, xp).any(axis=1)
        within = _overlaps(tile, tile, iou_threshold, xp)
        new = []
        for position in np.flatnonzero(alive):
            if not alive[position]:
                continue
            new.append(int(position))
            if len(kept) + len(new) >= limit:
                break
            alive &= ~within[position]
        kept.extend(start + p for p in new)
        if len(kept) >= limit:
            break
        kept_corners = xp.concatenate([kept_corners, tile[xp.asarray(np.asarray(new, dtype=np.int64))]])
    return kept


def _compute(layer, inputs, xp):
    boxes, scores = inputs[0], inputs[1]
    _check_shapes(boxes.shape, scores.shape)
    limit = _optional_scalar(inputs, 2)
    limit = 0 if limit is None else max(int(limit), 0)
    limit_candidates = _topk_limit(layer)
    if limit_candidates is None:
        limit_candidates = boxes.shape[1]
    iou_threshold = _optional_scalar(inputs, 3)
    iou_threshold = 0.0 if iou_threshold is None else float(iou_threshold)
    score_threshold = _optional_scalar(inputs, 4)
    center_sizes = _center_sizes(layer)
    host_scores = _to_host(scores)
    rows: list[tuple[int, int, int]] = []
    if limit > 0:
        for batch in range(boxes.shape[0]):
            for cls in range(scores.shape[1]):
                class_scores = host_scores[batch, cls]
                candidates = np.arange(class_scores.shape[0]) if score_threshold is None else \
                    np.flatnonzero(class_scores > class_scores.dtype.type(score_threshold))
                order = candidates[np.argsort(-class_scores[candidates], kind="stable")][:limit_candidates]
                if order.size == 0:
                    continue
                corners = _corners(boxes[batch][xp.asarray(order)], center_sizes, xp)
                rows.extend((batch, cls, int(order[p])) for p in _greedy(corners, iou_threshold, limit, xp))
    selected = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    return [xp.asarray(selected), xp.asarray(np.int32(len(rows)))]


register_layer(LayerType.NMS, _infer, _compute, static_output_shape=False, upper_bound=_upper_bound,
               host_operands=(2, 3, 4))


@onnx_op("NonMaxSuppression", min_opset=10)
def import_nms(ctx):
    center = int(ctx.attr("center_point_box", 0))
    if center not in (0, 1):
        ctx.unsupported(f"center_point_box must be 0 or 1, got {center}", UnsupportedCategory.ATTRIBUTE)
    boxes, scores = ctx.input(0), ctx.input(1)
    for name, tensor in (("boxes", boxes), ("scores", scores)):
        if tensor is not None and tensor.shape is not None and len(tensor.shape) != 3:
            ctx.unsupported(f"{name} must have rank 3, got shape {list(tensor.shape)}", UnsupportedCategory.OTHER)
    inputs = [boxes, scores] + [ctx.input(i) for i in range(2, ctx.num_inputs)]
    params = {"bounding_box_format": BOX_FORMATS[center], "topk_box_limit": None}
    layer = ctx.network.add_layer(LayerType.NMS, inputs, params, num_outputs=2, name=ctx.layer_name(),
                                  output_dtypes=[DataType.INT64, DataType.INT32])
    return [layer.get_output(0)]
