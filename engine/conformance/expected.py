"""ONNX node conformance cases that are known to fail, each with its reason and how it fails (see
engine/conformance/runner.py).

Only genuine limitations belong here (a mode an inference engine does not implement, a precision limit), never a
bug that can be fixed. An entry whose case passes (or no longer runs, or does not exist) is stale and fails the
conformance run until it is removed. Cases whose graph inputs/outputs have a type the engine lacks (string,
float8, 4- and 2-bit types) or that use an op without an importer are not listed: the runner reports
them as unsupported, with that reason, by rule.

Each entry pins *how* the case fails (`fails_with`, a regular expression its failure message must match): a case
that starts failing for another reason (a crash, a new mismatch) fails the run instead of hiding behind the entry.
"""
from __future__ import annotations

from typing import NamedTuple


class ExpectedFailure(NamedTuple):
    reason: str
    fails_with: str  # re.search pattern over the failure message ("ExceptionType: message")

    def __str__(self) -> str:
        return self.reason


_TRAINING = "training_mode=1 (random dropout / batch statistics) is training-only; the engine is inference-only"
_ANTIALIAS = "Resize antialias=1 (a low-pass filter when downscaling) is not implemented; the importer refuses it"
_FP16_ROUNDING = ("float16 rounding: the expected values round every step to float16; 2 of 192 outputs differ by 2 "
                  "float16 ULPs (closer to the float64 result), and rtol=1e-3 is about 1 ULP")
_BF16_ROUNDING = ("bfloat16 rounding: each node of the expanded graph rounds its output to bfloat16 (8-bit "
                  "mantissa), the expected values differ by at most 2 bfloat16 ULPs on 12-41% of the outputs, and "
                  "rtol=1e-3 is a quarter of one bfloat16 ULP")

_BLOCKED = ("block quantization (opset 21's block_size: one scale per block of an axis) is not implemented; TensorRT "
            "8.6 has no such mode and the importer refuses it")

_AFFINE_GRID_SQUEEZE = ("the function body squeezes (Squeeze without axes) a tensor whose batch dim is a value of the "
                        "`size` input, known only at run time; Squeeze without axes needs static dims when imported, "
                        "as in TensorRT's parser")
_AFFINE_GRID_IF_RANK = ("the function body has an If on a run-time condition (a dim of `size` equal to 1) whose "
                        "branches give a scalar and a 1-element vector; a TensorRT if-conditional needs the same rank "
                        "from both branches")

_BLOCKED_FAILS = r"^ParseError: node '\w+' \((Dequantize|Quantize)Linear\): block quantization \(block_size\) is not "
_DROPOUT_TRAINING_FAILS = r"^ParseError: node '\w+' \(Dropout\): training_mode must be a constant false"
_ANTIALIAS_FAILS = r"^ParseError: node '\w+' \(Resize\): antialias=1 is not supported"
# At most a few elements, each off by float16 rounding (the mismatch count is pinned; the values are in the message).
_FP16_ROUNDING_FAILS = r"^AssertionError: Not equal to tolerance rtol=0\.001.*\nMismatched elements: [12] / 192 "
_BF16_ROUNDING_FAILS = r"^AssertionError: Not equal to tolerance rtol=.*\nMismatched elements: \d+ / \d+ "
_AFFINE_GRID_SQUEEZE_FAILS = (r"^ParseError: node 'If_\d+' \(If\): then_branch: node 'Squeeze_\d+' \(Squeeze\): "
                              r"Squeeze without axes needs a static input shape")
_AFFINE_GRID_IF_RANK_FAILS = r"then-branch gives .* else-branch"

EXPECTED_FAILURES: dict[str, ExpectedFailure] = {
    "test_affine_grid_2d_expanded": ExpectedFailure(_AFFINE_GRID_SQUEEZE, _AFFINE_GRID_SQUEEZE_FAILS),
    "test_affine_grid_2d_align_corners_expanded": ExpectedFailure(_AFFINE_GRID_SQUEEZE, _AFFINE_GRID_SQUEEZE_FAILS),
    "test_affine_grid_3d_align_corners_expanded": ExpectedFailure(_AFFINE_GRID_IF_RANK, _AFFINE_GRID_IF_RANK_FAILS),
    "test_dequantizelinear_blocked": ExpectedFailure(_BLOCKED, _BLOCKED_FAILS),
    "test_quantizelinear_blocked_asymmetric": ExpectedFailure(_BLOCKED, _BLOCKED_FAILS),
    "test_quantizelinear_blocked_symmetric": ExpectedFailure(_BLOCKED, _BLOCKED_FAILS),
    "test_training_dropout": ExpectedFailure(_TRAINING, _DROPOUT_TRAINING_FAILS),
    "test_training_dropout_default": ExpectedFailure(_TRAINING, _DROPOUT_TRAINING_FAILS),
    "test_training_dropout_default_mask": ExpectedFailure(_TRAINING, _DROPOUT_TRAINING_FAILS),
    "test_training_dropout_mask": ExpectedFailure(_TRAINING, _DROPOUT_TRAINING_FAILS),
    "test_training_dropout_zero_ratio": ExpectedFailure(_TRAINING, _DROPOUT_TRAINING_FAILS),
    "test_training_dropout_zero_ratio_mask": ExpectedFailure(_TRAINING, _DROPOUT_TRAINING_FAILS),
    "test_resize_downsample_scales_cubic_antialias": ExpectedFailure(_ANTIALIAS, _ANTIALIAS_FAILS),
    "test_resize_downsample_scales_linear_antialias": ExpectedFailure(_ANTIALIAS, _ANTIALIAS_FAILS),
    "test_resize_downsample_sizes_cubic_antialias": ExpectedFailure(_ANTIALIAS, _ANTIALIAS_FAILS),
    "test_resize_downsample_sizes_linear_antialias": ExpectedFailure(_ANTIALIAS, _ANTIALIAS_FAILS),
    "test_attention_4d_causal_fp16_expanded": ExpectedFailure(_FP16_ROUNDING, _FP16_ROUNDING_FAILS),
    "test_attention_4d_causal_bf16_expanded": ExpectedFailure(_BF16_ROUNDING, _BF16_ROUNDING_FAILS),
    "test_attention_4d_padded_kv_bf16_expanded": ExpectedFailure(_BF16_ROUNDING, _BF16_ROUNDING_FAILS),
    "test_attention_4d_causal_padded_kv_bf16_expanded": ExpectedFailure(_BF16_ROUNDING, _BF16_ROUNDING_FAILS),
    "test_attention_4d_attn_mask_causal_bf16_expanded": ExpectedFailure(_BF16_ROUNDING, _BF16_ROUNDING_FAILS),
    "test_attention_3d_causal_bf16_expanded": ExpectedFailure(_BF16_ROUNDING, _BF16_ROUNDING_FAILS),
}
