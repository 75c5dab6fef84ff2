"""NMS layers and the ONNX NonMaxSuppression importer, checked against onnxruntime and the ONNX backend cases."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_ort, node_model, run_engine

from engine.conformance.harness import parse_onnx
from engine.dtypes import DataType
from engine.enums import LayerType
from engine.errors import ParseError, ShapeError
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo, layer_impl

RNG = np.random.default_rng(31)


@pytest.mark.parametrize("case", cases_for(["NonMaxSuppression"]), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


def random_boxes(batches: int, boxes: int, center: int) -> np.ndarray:
    """Overlapping boxes on a 10x10 field, in corner ([y1, x1, y2, x2], corners sometimes swapped) or center
    ([xc, yc, w, h]) form."""
    low = RNG.uniform(0, 8, (batches, boxes, 2))
    size = RNG.uniform(0.5, 3, (batches, boxes, 2))
    if center:
        return np.concatenate([low[..., ::-1] + size[..., ::-1] / 2, size[..., ::-1]], -1).astype(np.float32)
    corners = np.concatenate([low, low + size], -1)
    swap = RNG.random((batches, boxes)) < 0.3
    corners[swap] = corners[swap][:, [2, 3, 0, 1]]
    return corners.astype(np.float32)


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("max_boxes,iou,score", [(3, 0.5, 0.2), (100, 0.3, None), (1, 0.0, 0.9), (0, 0.5, 0.0),
                                                 (5, 1.0, -1.0)])
def test_several_batches_and_classes_match_onnxruntime(center, max_boxes, iou, score):
    values = {"boxes": random_boxes(3, 40, center), "scores": RNG.random((3, 4, 40)).astype(np.float32),
              "max": np.array([max_boxes], np.int64), "iou": np.array([iou], np.float32)}
    names = ["boxes", "scores", "max", "iou"]
    if score is not None:
        values["score"] = np.array([score], np.float32)
        names.append("score")
    (selected,) = check_against_ort("NonMaxSuppression", names, values, constants=names[2:],
                                    attrs={"center_point_box": center})
    assert selected.shape[1] == 3 and selected.shape[0] <= 3 * 4 * min(max_boxes, 40)


def test_thresholds_fed_at_run_time_match_onnxruntime():
    values = {"boxes": random_boxes(2, 25, 0), "scores": RNG.random((2, 3, 25)).astype(np.float32),
              "max": np.array([4], np.int64), "iou": np.array([0.4], np.float32),
              "score": np.array([0.3], np.float32)}
    check_against_ort("NonMaxSuppression", ["boxes", "scores", "max", "iou", "score"], values)


@pytest.mark.parametrize("present", [0, 1, 2])
def test_omitted_optional_inputs_match_onnxruntime(present):
    """No max_output_boxes_per_class selects nothing; no iou_threshold suppresses any overlap; no score_threshold
    keeps every score."""
    values = {"boxes": random_boxes(1, 20, 0), "scores": RNG.random((1, 2, 20)).astype(np.float32),
              "max": np.array([6], np.int64), "iou": np.array([0.5], np.float32)}
    names = ["boxes", "scores", "max", "iou"][:2 + present]
    (selected,) = check_against_ort("NonMaxSuppression", names, values, constants=names[2:])
    assert (selected.shape[0] == 0) == (present == 0)


def test_equal_scores_keep_the_lower_box_index_first():
    boxes = np.array([[[0, 0, 1, 1], [5, 5, 6, 6], [0, 0, 1, 1.01], [9, 9, 10, 10]]], np.float32)
    scores = np.array([[[0.5, 0.5, 0.5, 0.7]]], np.float32)
    values = {"boxes": boxes, "scores": scores, "max": np.array([10], np.int64), "iou": np.array([0.5], np.float32)}
    (selected,) = check_against_ort("NonMaxSuppression", ["boxes", "scores", "max", "iou"], values,
                                    constants=["max", "iou"])
    # By hand: box 3 scores highest; 0, 1, 2 tie and go by index; 2 overlaps 0 almost entirely.
    np.testing.assert_array_equal(selected, [[0, 0, 3], [0, 0, 0], [0, 0, 1]])


def test_upper_bound_and_topk_box_limit():
    network = NetworkDefinition()
    boxes = network.add_input("boxes", DataType.FLOAT, (2, 30, 4))
    scores = network.add_input("scores", DataType.FLOAT, (2, 5, 30))
    limit = network.add_constant((1,), np.array([7], np.int64)).get_output(0)
    layer = network.add_nms(boxes, scores, limit)
    assert layer.get_output(0).shape == (-1, 3) and layer.get_output(1).shape == ()
    impl = layer_impl(LayerType.NMS)
    infos = [TensorInfo((2, 30, 4), DataType.FLOAT), TensorInfo((2, 5, 30), DataType.FLOAT),
             TensorInfo((1,), DataType.INT64, np.array([7]))]
    assert impl.upper_bound(layer, infos)[0] == ((2 * 5 * 7, 3), DataType.INT64)
    layer.topk_box_limit = 3
    assert impl.upper_bound(layer, infos)[0] == ((2 * 5 * 3, 3), DataType.INT64)
    box_values = random_boxes(2, 30, 0)
    score_values = RNG.random((2, 5, 30)).astype(np.float32)
    selected, count = impl.compute(layer, [box_values, score_values, np.array([7]), np.array([1.0], np.float32)],
                                   np)
    # iou_threshold 1 suppresses nothing: each class keeps its 3 best-scoring candidates.
    assert int(count) == len(selected) == 2 * 5 * 3
    for batch in range(2):
        for cls in range(5):
            rows = selected[(selected[:, 0] == batch) & (selected[:, 1] == cls), 2]
            np.testing.assert_array_equal(rows, np.argsort(-score_values[batch, cls], kind="stable")[:3])


def test_bad_center_point_box_is_unsupported():
    values = {"boxes": random_boxes(1, 4, 0), "scores": RNG.random((1, 1, 4)).astype(np.float32)}
    with pytest.raises(ParseError, match="center_point_box must be 0 or 1, got 2"):
        parse_onnx(node_model("NonMaxSuppression", ["boxes", "scores"], values, attrs={"center_point_box": 2}))


def test_boxes_of_wrong_rank_are_unsupported():
    values = {"boxes": np.zeros((4, 4), np.float32), "scores": np.zeros((1, 1, 4), np.float32)}
    with pytest.raises(ParseError, match="boxes must have rank 3"):
        parse_onnx(node_model("NonMaxSuppression", ["boxes", "scores"], values))


def test_boxes_and_scores_that_disagree_are_a_shape_error():
    network = NetworkDefinition()
    boxes = network.add_input("boxes", DataType.FLOAT, (1, 6, 4))
    scores = network.add_input("scores", DataType.FLOAT, (1, 2, 5))
    limit = network.add_constant((1,), np.array([3], np.int64)).get_output(0)
    layer = network.add_nms(boxes, scores, limit)
    network.mark_output(layer.get_output(0))
    from engine.conformance.harness import build_engine_for_feeds

    with pytest.raises(ShapeError, match="disagree on the boxes dim"):
        build_engine_for_feeds(network, {"boxes": np.zeros((1, 6, 4), np.float32),
                                         "scores": np.zeros((1, 2, 5), np.float32)})


def test_float16_boxes_match_a_float32_run():
    boxes, scores = random_boxes(1, 30, 0), RNG.random((1, 2, 30)).astype(np.float32)
    half = {"boxes": boxes.astype(np.float16), "scores": scores.astype(np.float16),
            "max": np.array([5], np.int64), "iou": np.array([0.5], np.float32)}
    model = node_model("NonMaxSuppression", ["boxes", "scores", "max", "iou"], half, constants=["max", "iou"])
    (selected,) = run_engine(model, {"boxes": half["boxes"], "scores": half["scores"]})
    wide = dict(half, boxes=half["boxes"].astype(np.float32), scores=half["scores"].astype(np.float32))
    (expected,) = check_against_ort("NonMaxSuppression", ["boxes", "scores", "max", "iou"], wide,
                                    constants=["max", "iou"])
    np.testing.assert_array_equal(selected, expected)


@pytest.mark.parametrize("tile", [7, 256])
def test_candidates_spanning_many_tiles_match_onnxruntime(monkeypatch, tile):
    """600 candidates per class: tiles are checked against the boxes kept in earlier tiles."""
    from engine.ops import nms

    monkeypatch.setattr(nms, "TILE", tile)
    values = {"boxes": random_boxes(1, 600, 0), "scores": RNG.random((1, 2, 600)).astype(np.float32),
              "max": np.array([1000], np.int64), "iou": np.array([0.3], np.float32)}
    (selected,) = check_against_ort("NonMaxSuppression", ["boxes", "scores", "max", "iou"], values,
                                    constants=["max", "iou"])
    assert 100 < len(selected) < 1200  # 600 candidates a class: 3 tiles of 256, 86 of 7


@pytest.mark.gpu
def test_gpu_nms_and_non_zero_match_onnxruntime():
    from onnx_node_check import run_ort

    from engine.conformance.harness import run_onnx

    values = {"boxes": random_boxes(2, 700, 1), "scores": RNG.random((2, 3, 700)).astype(np.float32),
              "max": np.array([50], np.int64), "iou": np.array([0.4], np.float32),
              "score": np.array([0.1], np.float32)}
    model = node_model("NonMaxSuppression", ["boxes", "scores", "max", "iou", "score"], values,
                       constants=["max", "iou", "score"], attrs={"center_point_box": 1})
    feeds = {"boxes": values["boxes"], "scores": values["scores"]}
    np.testing.assert_array_equal(run_onnx(model, feeds, device="gpu")["y0"], run_ort(model, feeds)[0])
    x = (RNG.random((4, 33)) < 0.3).astype(np.float32)
    model = node_model("NonZero", ["x"], {"x": x})
    np.testing.assert_array_equal(run_onnx(model, {"x": x}, device="gpu")["y0"], run_ort(model, {"x": x})[0])
