"""QDQ models from onnxruntime's static quantizer run through the engine and match onnxruntime's own execution
of them: at least 99.9% of output elements within one quantization step of the output (the documented metric,
docs/quantization.md), on the three shared models; and through `polyx run --engine --onnxrt` on the CLI."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from quantized_models import calibration_shapes, output_steps, qdq_model
from shared_model_cases import MODELS as MODELS_DIR
from shared_model_cases import make_feeds

from engine.conformance.harness import run_onnx
from polyx.cli.app import main

MODELS = ["mobilenet_v2", "bert_tiny", "gpt2_tiny"]


def shared_model(name: str) -> None:
    if not (MODELS_DIR / f"{name}.onnx").is_file():
        pytest.skip(f"shared model {name} is not available in {MODELS_DIR}")


def within_one_step(got: np.ndarray, want: np.ndarray, step: float) -> float:
    """Fraction of elements within one step (plus float32 rounding of the dequantized value)."""
    slack = step * (1 + 1e-5) + 1e-6 * np.abs(want)
    return float(np.mean(np.abs(got.astype(np.float64) - want) <= slack))


@pytest.mark.parametrize("name", MODELS)
def test_qdq_model_matches_onnxruntime_within_one_step(name):
    shared_model(name)
    model = onnx.load(qdq_model(name))
    feeds = make_feeds(onnx.load(MODELS_DIR / f"{name}.onnx"), calibration_shapes(name), seed=99)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    got = run_onnx(model, feeds)
    for output, step in output_steps(model).items():
        assert within_one_step(got[output], expected[output], step) >= 0.999, output


def test_polyx_run_compares_a_qdq_model_at_one_step(capsys):
    shared_model("bert_tiny")
    path = qdq_model("bert_tiny")
    step = max(output_steps(onnx.load(path)).values())
    shapes = " ".join(f"{k}:[{','.join(map(str, v))}]" for k, v in calibration_shapes("bert_tiny").items())
    code = main(["run", str(path), "--engine", "--onnxrt", "--input-shapes", *shapes.split(),
                 "--atol", f"{step * 1.0001:.6g}", "--rtol", "0"])
    assert code == 0, capsys.readouterr().out
