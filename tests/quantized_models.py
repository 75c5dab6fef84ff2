"""QDQ versions of the shared models, made the way users make them: onnxruntime's static quantizer in QDQ format
(int8 activations and weights, symmetric, per-channel weights, as TensorRT requires), calibrated on four seeded
batches. Cached per test session in a temporary folder."""
from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from shared_model_cases import CASES, MODELS, make_feeds

_FOLDER = Path(tempfile.mkdtemp(prefix="polyx-qdq-"))


class _Batches(CalibrationDataReader):
    def __init__(self, batches: list[dict[str, np.ndarray]]):
        self._batches = iter(batches)

    def get_next(self):
        return next(self._batches, None)


def calibration_shapes(name: str) -> dict[str, tuple[int, ...]]:
    case = next(c for c in CASES if c.model == name)
    return case.run_shapes[0]


@functools.cache
def qdq_model(name: str, preprocessed: bool = False) -> Path:
    """The quantized model's path. The transformers' attention masks hold -inf (or float32's lowest), which no
    finite scale can quantize: the Where nodes making them, the nodes adding them and the Softmax reading the sum
    stay in float, as a user excludes them. `preprocessed`: first onnxruntime's `quant_pre_process` (what its
    quantizer recommends: BatchNormalization folded into the convolutions, so no Q/DQ pair sits between them)."""
    source = MODELS / f"{name}.onnx"
    if preprocessed:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        folded = _FOLDER / f"{name}_preprocessed.onnx"
        quant_pre_process(str(source), str(folded), skip_symbolic_shape=True)
        source = folded
    else:  # onnxruntime's quantizer writes '<model>-inferred.onnx' beside its input: not into the shared models
        copied = _FOLDER / f"{name}.onnx"
        shutil.copyfile(source, copied)
        source = copied
    model = onnx.load(source)
    masks = {out for n in model.graph.node if n.op_type == "Where" for out in n.output}
    exclude = [n.name for n in model.graph.node if n.op_type in ("Where", "Softmax") or masks & set(n.input)]
    target = _FOLDER / f"{name}{'_preprocessed' if preprocessed else ''}_qdq.onnx"
    batches = [make_feeds(model, calibration_shapes(name), seed) for seed in range(4)]
    quantize_static(str(source), str(target), _Batches(batches), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                    nodes_to_exclude=exclude, extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return target


def output_steps(model: onnx.ModelProto) -> dict[str, float]:
    """Per graph output, the quantization step of the DequantizeLinear producing it (the metric's unit)."""
    producers = {out: node for node in model.graph.node for out in node.output}
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    steps = {}
    for output in model.graph.output:
        node = producers[output.name]
        assert node.op_type == "DequantizeLinear", f"output {output.name} is not dequantized ({node.op_type})"
        steps[output.name] = float(np.max(inits[node.input[1]]))
    return steps
