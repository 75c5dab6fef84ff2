"""cuBLASLt int8 GEMMs that requantize in their epilogue (engine/tactics/gpu_int8_cublaslt.py) on HWC tensors:
within one quantization step of the int64/float64 reference everywhere and equal to it on nearly every element
(float32 scales can round a near-half-step value the other way), for 1x1 convolutions read in place, rows padded
to 4 bytes, the vectorized and the bytewise NHWC im2col, strides, padding, dilation, INT8 residuals and ReLU;
and end to end, a QDQ ResNet-like model built channels-last whose convolutions run on it, within one step of
onnxruntime's outputs and replayed as a CUDA graph."""
from __future__ import annotations

import numpy as np
import pytest
from channels_last_models import feeds as resnet_like_feeds
from channels_last_models import resnet_like_model
from int8_layer_cases import RELU, conv_layer
from test_gpu_int8_nhwc import _build, _conv_tactics, _hwc_context, _qdq, _tactic, check_against_onnxruntime, run_hwc

import engine as trt

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")

CUBLASLT = "gpu:convolution:int8_cublaslt_nhwc_h0"
CASES = {
    "1x1_in_place_relu": lambda rng: conv_layer(rng, (2, 16, 7, 9), 12, (1, 1), activation=RELU),
    "1x1_c7_padded_rows": lambda rng: conv_layer(rng, (2, 7, 5, 6), 8, (1, 1)),
    "1x1_stride2_vectorized_im2col": lambda rng: conv_layer(rng, (1, 32, 9, 9), 16, (1, 1), stride=(2, 2)),
    "3x3_c3_bytewise_im2col_relu": lambda rng: conv_layer(rng, (2, 3, 11, 10), 8, (3, 3), stride=(2, 2),
                                                          pre=(1, 1), post=(1, 1), activation=RELU),
    "3x3_c16_vectorized_padded_relu": lambda rng: conv_layer(rng, (2, 16, 8, 7), 20, (3, 3), pre=(1, 1),
                                                             post=(1, 1), activation=RELU),
    "3x3_c32_dilated_no_bias": lambda rng: conv_layer(rng, (1, 32, 12, 9), 4, (3, 3), dilation=(2, 1),
                                                      pre=(2, 0), post=(1, 2), bias=False),
    "1x1_residual_int8_relu": lambda rng: conv_layer(rng, (2, 64, 6, 6), 64, (1, 1), activation=RELU,
                                                     residual="int8"),
    "3x3_residual_int8_no_activation": lambda rng: conv_layer(rng, (1, 16, 7, 7), 16, (3, 3), pre=(1, 1),
                                                              post=(1, 1), residual="int8"),
}


@pytest.mark.parametrize("name", CASES)
def test_cublaslt_int8_is_within_one_step_of_the_exact_reference(name):
    layer = CASES[name](np.random.default_rng(23))
    got = run_hwc(_tactic(CUBLASLT, "gpu"), layer, _hwc_context(layer.ctx)).astype(np.int64)
    want = layer.reference.astype(np.int64)
    off = np.abs(got - want)
    assert off.max() <= 1, f"{name}: {int((off > 1).sum())} outputs more than one step from the reference, " \
                           f"worst {got.ravel()[off.argmax()]} vs {want.ravel()[off.argmax()]}"
    assert np.mean(off == 0) >= 0.99, f"{name}: only {np.mean(off == 0):.4f} of the outputs equal the reference"
    assert len(np.unique(got)) > 8, "a degenerate case (everything saturated) would prove nothing"


def test_cublaslt_int8_refuses_what_its_epilogue_lacks():
    rng = np.random.default_rng(3)
    tactic = _tactic(CUBLASLT, "gpu")
    float_out = _hwc_context(conv_layer(rng, (1, 8, 5, 5), 8, (1, 1), output="float16").ctx)
    assert "INT8 outputs only" in tactic.supports(float_out)
    odd_maps = _hwc_context(conv_layer(rng, (1, 8, 5, 5), 6, (1, 1)).ctx)
    assert "multiple of 4" in tactic.supports(odd_maps)


class Int8ConvolutionsOnCublasLt(trt.IAlgorithmSelector):
    """Convolutions that cuBLASLt's int8 GEMM can run take it (whatever the timing); other layers keep every tactic."""

    def select_algorithms(self, context, choices):
        chosen = [i for i, a in enumerate(choices) if a.tactic_name.startswith(CUBLASLT[:-1])]
        return chosen or list(range(len(choices)))

    def report_algorithms(self, contexts, choices):
        pass


def test_qdq_resnet_like_runs_on_cublaslt_int8_within_one_step_of_onnxruntime_and_replays(tmp_path):
    model = _qdq(resnet_like_model(), tmp_path, [resnet_like_feeds(2, seed) for seed in range(4)])
    engine = _build(model, True, (2, 3, 12, 12), selector=Int8ConvolutionsOnCublasLt())
    tactics = _conv_tactics(engine)
    assert {name: tactics[name][:-1] for name in ("conv1", "conv2", "conv3")} == \
        dict.fromkeys(("conv1", "conv2", "conv3"), CUBLASLT[:-1]), tactics
    graphed = check_against_onnxruntime(engine, model, 2)
    assert graphed.cuda_graph_captures == 1

