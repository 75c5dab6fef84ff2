"""bench/real_exports.py and bench/detection_compare.py: their CPU-safe parts (no torch here). The check half runs
polyx on a small model and parses its output; the detection comparison accepts a near-tie reorder and refuses a
changed label, box or score."""
import re
import sys

import numpy as np
import pytest
from bench_scripts import load_bench_script
from onnx import TensorProto, helper, save


@pytest.fixture(scope="module")
def compare():
    return load_bench_script("detection_compare").compare_detections


def detections():
    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 2, 3, 4]], np.float32)
    return {"boxes": boxes, "scores": np.array([0.9, 0.5, 0.5], np.float32), "labels": np.array([3, 7, 1])}


def test_detections_reordered_within_a_tie_match(compare):
    reference, candidate = detections(), detections()
    for name in candidate:
        candidate[name] = candidate[name][[0, 2, 1]]  # the two 0.5 detections swap places
    assert compare(reference, candidate) == {"boxes": True, "scores": True, "labels": True}


@pytest.mark.parametrize("change", ["label", "box", "score"])
def test_changed_detection_fails(compare, change):
    reference, candidate = detections(), detections()
    if change == "label":
        candidate["labels"][1] = 8
    elif change == "box":
        candidate["boxes"][2, 3] += 1.0
    else:
        candidate["scores"][0] = 0.8
    result = compare(reference, candidate)
    assert not all(result.values())
    assert set(result) == {"boxes", "scores", "labels"}


def test_per_detection_outputs_follow_their_matched_detection(compare):
    """Masks (Mask R-CNN) travel with their detection: a near-tie reorder of the detections and their masks
    matches; one mask pixel off by 0.1 fails the masks only."""
    reference, candidate = detections(), detections()
    reference["masks"] = np.random.default_rng(0).random((3, 1, 4, 4)).astype(np.float32)
    candidate["masks"] = reference["masks"].copy()
    for name in candidate:
        candidate[name] = candidate[name][[0, 2, 1]]
    assert compare(reference, candidate) == {"boxes": True, "scores": True, "labels": True, "masks": True}
    candidate["masks"][1, 0, 2, 2] += 0.1  # candidate row 1 is reference detection 2
    assert compare(reference, candidate) == {"boxes": True, "scores": True, "labels": True, "masks": False}
    candidate["masks"] = reference["masks"]  # not reordered with its detections: rows 1 and 2 swapped
    assert compare(reference, candidate)["masks"] is False


def test_mask_pasted_at_another_whole_pixel_width_is_not_compared(compare):
    """Mask R-CNN's case: box x2 = 144.3729 vs 144.3744 (within the box tolerance) expands by 30/28 to 145.9989 vs
    146.0004, so torchvision pastes the mask 49 or 50 px wide and the mask values differ by up to 0.5. Only that
    detection's mask is exempt: a box inside one whole pixel with a different mask still fails."""
    reference, candidate = detections(), detections()
    reference["boxes"][0] = [98.8463, 129.9308, 144.3729, 146.2206]
    candidate["boxes"][0] = [98.8465, 129.9316, 144.3744, 146.2215]
    reference["masks"] = np.zeros((3, 1, 4, 4), np.float32)
    candidate["masks"] = reference["masks"].copy()
    candidate["masks"][0] += 0.4
    assert compare(reference, candidate)["masks"] is True
    candidate["boxes"][0, 2] = 144.3731  # expands to 145.9991: the same whole pixel as the reference
    assert compare(reference, candidate)["masks"] is False


def test_check_one_parses_a_polyx_run(tmp_path):
    """The check half on a tiny exported-style model: status, errors and times come from polyx's own output."""
    script = load_bench_script("real_exports")
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "tiny.onnx"))
    record = script.check_one("tiny", tmp_path, sys.executable, False, 120)
    assert record["status"] == "pass", record
    assert record["max_abs"] == 0.0  # ReLU is exact in both runtimes
    assert record["build_s"] is not None and record["infer_ms"] is not None
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    failed = script.check_one("broken", tmp_path, sys.executable, False, 120)
    assert failed["status"] == "error" and "broken.onnx" in failed["error"]


def test_fused_layer_counts_read_from_the_build_summary():
    """The fused transformer layers per model come from `polyx run -v`'s "tactics by layer type" rows, all tactics of
    a type summed; other types and other lines are ignored."""
    script = load_bench_script("real_exports")
    text = ("  tactics by layer type:\n"
            "    ATTENTION: cpu_reference_attention x2, gpu:attention:flash x10\n"
            "    MATRIX_MULTIPLY: cpu:matmul:constant_weight_gemm x10\n"
            "    RESIDUAL_NORMALIZATION: cpu_reference_residual_normalization x4\n"
            "  plan: 16.8 MiB, device cpu\n")
    assert script.fused_layer_counts(text) == {"ATTENTION": 12, "RESIDUAL_NORMALIZATION": 4}
    assert script.fused_layer_counts("no build summary") == {}
    table = script.markdown({"bert": {"export": "ok", "fp32": {"status": "pass", "fused_layers": {
        "ATTENTION": 12, "RESIDUAL_NORMALIZATION": 25}}}, "vgg": {"export": "fail", "export_error": "no"}})
    header, _, bert = ([cell.strip() for cell in re.split(r"(?<!\\)\|", line)] for line in table.splitlines()[:3])
    column = header.index("fused ATTENTION / MASKED_SOFTMAX / RESIDUAL_NORMALIZATION")
    assert bert[column] == "12 / 0 / 25", "the counts in the order the header names them"
    assert "| ok | pass |" in table.splitlines()[2]
    assert "/ 0 |" not in table.splitlines()[3]  # not checked: no counts
