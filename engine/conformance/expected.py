"""ONNX node conformance cases that are known to fail, each with its reason (see engine/conformance/runner.py).

Only genuine limitations belong here (a mode an inference engine does not implement, a precision limit), never a
bug that can be fixed. An entry whose case passes (or no longer runs, or does not exist) is stale and fails the
conformance run until it is removed. Cases whose graph inputs/outputs have a type the engine lacks (string,
bfloat16, float8, 4- and 2-bit types) or that use an op without an importer are not listed: the runner reports
them as unsupported, with that reason, by rule.
"""

_TRAINING = "training_mode=1 (random dropout / batch statistics) is training-only; the engine is inference-only"
_ANTIALIAS = "Resize antialias=1 (a low-pass filter when downscaling) is not implemented; the importer refuses it"
_FP16_ROUNDING = ("float16 rounding: the expected values round every step to float16; 2 of 192 outputs differ by 2 "
                  "float16 ULPs (closer to the float64 result), and rtol=1e-3 is about 1 ULP")

_BLOCKED = ("block quantization (opset 21's block_size: one scale per block of an axis) is not implemented; TensorRT "
            "8.6 has no such mode and the importer refuses it")

_AFFINE_GRID_SQUEEZE = ("the function body squeezes (Squeeze without axes) a tensor whose batch dim is a value of the "
                        "`size` input, known only at run time; Squeeze without axes needs static dims when imported, "
                        "as in TensorRT's parser")
_AFFINE_GRID_IF_RANK = ("the function body has an If on a run-time condition (a dim of `size` equal to 1) whose "
                        "branches give a scalar and a 1-element vector; a TensorRT if-conditional needs the same rank "
                        "from both branches")

EXPECTED_FAILURES: dict[str, str] = {
    "test_affine_grid_2d_expanded": _AFFINE_GRID_SQUEEZE,
    "test_affine_grid_2d_align_corners_expanded": _AFFINE_GRID_SQUEEZE,
    "test_affine_grid_3d_align_corners_expanded": _AFFINE_GRID_IF_RANK,
    "test_dequantizelinear_blocked": _BLOCKED,
    "test_quantizelinear_blocked_asymmetric": _BLOCKED,
    "test_quantizelinear_blocked_symmetric": _BLOCKED,
    "test_batchnorm_epsilon_training_mode": _TRAINING,
    "test_batchnorm_example_training_mode": _TRAINING,
    "test_training_dropout": _TRAINING,
    "test_training_dropout_default": _TRAINING,
    "test_training_dropout_default_mask": _TRAINING,
    "test_training_dropout_mask": _TRAINING,
    "test_training_dropout_zero_ratio": _TRAINING,
    "test_training_dropout_zero_ratio_mask": _TRAINING,
    "test_resize_downsample_scales_cubic_antialias": _ANTIALIAS,
    "test_resize_downsample_scales_linear_antialias": _ANTIALIAS,
    "test_resize_downsample_sizes_cubic_antialias": _ANTIALIAS,
    "test_resize_downsample_sizes_linear_antialias": _ANTIALIAS,
    "test_attention_4d_causal_fp16_expanded": _FP16_ROUNDING,
}
