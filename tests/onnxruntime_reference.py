"""onnxruntime's outputs for a model: the independent reference the engine tests compare against (CPU execution
provider, so the reference is the same on every machine)."""
from __future__ import annotations

import onnx
import onnxruntime as ort


def onnxruntime_outputs(model: onnx.ModelProto, feeds: dict) -> dict:
    """{output name: array} of one onnxruntime run of `model` on `feeds`."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
