"""polyx `--compare-func-script` for torchvision detection outputs (boxes [N, 4], scores [N], labels [N]).

Random weights score thousands of boxes within 1e-6 of each other, so two correct runtimes can list the same
detections in another order (a near-tie swap moves a box and its label, not its score: the sorted scores still
agree). An element-by-element check then fails on correct output; this one matches the detections as a set:
the sorted scores must agree, and every reference detection must have an unused candidate with the same label,
a score within SCORE_TOL and a box within BOX_TOL pixels. Any other per-detection output (Mask R-CNN's masks
[N, 1, H, W], Keypoint R-CNN's keypoints [N, K, 3] and keypoint scores [N, K]) must agree within EXTRA_ATOL /
EXTRA_RTOL between the matched detections. One exception: torchvision pastes a mask into the image at its box
expanded by 30/28 and cut to whole pixels, so two boxes 0.001 px apart that straddle a whole pixel paste the same
28x28 mask at widths 49 and 50 (half the values move by up to 0.5: Mask R-CNN, 1 of 100 detections). Masks of
detections whose pasted boxes differ that way are not compared (the boxes themselves still are, within BOX_TOL).

    polyx run ssdlite.onnx --engine --onnxrt --compare-func-script bench/detection_compare.py:compare_detections
"""
from __future__ import annotations

import numpy as np

SCORE_TOL = 1e-4
BOX_TOL = 1e-2
EXTRA_ATOL = 1e-2  # mask probabilities, keypoint pixels and logits of matched detections
EXTRA_RTOL = 1e-3
MASK_PASTE_SCALE = 30 / 28  # torchvision's expand_masks: a 28x28 mask padded by 1 on each side


def _pasted_box(box: np.ndarray) -> np.ndarray:
    """The whole-pixel box torchvision's paste_masks_in_image puts a mask at (expand_boxes, then int64)."""
    half = (box[2:] - box[:2]) * 0.5 * MASK_PASTE_SCALE
    centre = (box[2:] + box[:2]) * 0.5
    return np.concatenate([centre - half, centre + half]).astype(np.float32).astype(np.int64)


def _split(outputs: dict) -> tuple[str, str, str]:
    """The names of the boxes, scores and labels outputs, recognised by rank and type."""
    boxes = next(n for n, a in outputs.items() if np.ndim(a) == 2)
    labels = next(n for n, a in outputs.items() if np.ndim(a) == 1 and np.asarray(a).dtype.kind in "iu")
    scores = next(n for n, a in outputs.items() if np.ndim(a) == 1 and np.asarray(a).dtype.kind == "f")
    return boxes, scores, labels


def compare_detections(reference: dict, candidate: dict) -> dict:
    boxes, scores, labels = _split(reference)
    extras = [n for n in reference if n not in (boxes, scores, labels)]
    rb, rs, rl = (np.asarray(reference[n], np.float64) for n in (boxes, scores, labels))
    cb, cs, cl = (np.asarray(candidate[n], np.float64) for n in (boxes, scores, labels))
    if rb.shape != cb.shape or rs.shape != cs.shape or rl.shape != cl.shape:
        return dict.fromkeys(reference, False)
    sorted_scores = bool(np.all(np.abs(np.sort(rs) - np.sort(cs)) <= SCORE_TOL))
    unused = np.ones(len(cs), bool)
    pairs = []
    for i in range(len(rs)):
        close = unused & (cl == rl[i]) & (np.abs(cs - rs[i]) <= SCORE_TOL) & \
            (np.abs(cb - rb[i]).max(axis=1, initial=0.0) <= BOX_TOL)
        hits = np.flatnonzero(close)
        if not len(hits):
            break
        unused[hits[0]] = False
        pairs.append((i, hits[0]))
    matched = len(pairs) == len(rs)
    verdicts = {boxes: matched, scores: sorted_scores, labels: matched}
    for name in extras:
        ref, cand = np.asarray(reference[name], np.float64), np.asarray(candidate[name], np.float64)
        is_mask = ref.ndim == 4
        verdicts[name] = matched and ref.shape == cand.shape and all(
            np.allclose(cand[j], ref[i], atol=EXTRA_ATOL, rtol=EXTRA_RTOL) for i, j in pairs
            if not is_mask or np.array_equal(_pasted_box(rb[i]), _pasted_box(cb[j])))
    return verdicts
