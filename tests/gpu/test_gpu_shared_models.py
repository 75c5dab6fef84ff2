"""The shared models on the GPU against onnxruntime (CPU provider): FP32 (TF32 off, the default) within 1e-4 with
tactics chosen by timing on the device; FP16 (BuilderFlag.FP16) within 1e-2 of the output's scale; and CUDA-graph
replay of a whole model giving exactly the plain enqueue's outputs."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from shared_model_cases import CASES, MODELS, Case, build_case, make_feeds

import engine as trt

pytestmark = pytest.mark.gpu
pytest.importorskip("cupy")


def build(case: Case, fp16: bool = False, level: int = 3) -> trt.Engine:
    def configure(config: trt.BuilderConfig) -> None:
        config.builder_optimization_level = level
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)

    return build_case(case, "gpu", configure)[0]


def assert_every_layer_ran_on_the_gpu(engine: trt.Engine) -> None:
    """A CuPy-vs-NumPy comparison would pass on a host fallback: check where each layer's kernel runs."""
    cpu = [(row["name"], row["tactic"]) for row in engine.layer_info()
           if not row["host"] and not row["tactic"].startswith("gpu")]
    assert engine.device == "gpu" and not cpu, f"layers on CPU tactics: {cpu[:5]}"


def expected_outputs(case: Case, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    path = MODELS / f"{case.model}.onnx"
    session = ort.InferenceSession(path.as_posix(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


@pytest.mark.parametrize("case", CASES, ids=[c.model for c in CASES])
def test_fp32_matches_onnxruntime(case: Case) -> None:
    engine = build(case)
    assert engine.device == "gpu" and not engine.meta["flags"]["TF32"]
    assert_every_layer_ran_on_the_gpu(engine)
    model = onnx.load(MODELS / f"{case.model}.onnx")
    context = engine.create_execution_context()
    for seed, shapes in enumerate(case.run_shapes):
        feeds = make_feeds(model, shapes, seed)
        actual = context.execute(feeds)
        for name, want in expected_outputs(case, feeds).items():
            assert actual[name].shape == want.shape and actual[name].dtype == want.dtype
            np.testing.assert_allclose(actual[name], want, rtol=1e-4, atol=1e-4,
                                       err_msg=f"{case.model} output '{name}' at {shapes}")


@pytest.mark.parametrize("case", CASES, ids=[c.model for c in CASES])
def test_fp16_matches_onnxruntime_within_one_percent(case: Case) -> None:
    engine = build(case, fp16=True, level=0)
    precisions = {row["precision"] for row in engine.layer_info() if not row["host"]}
    assert "HALF" in precisions
    assert_every_layer_ran_on_the_gpu(engine)
    model = onnx.load(MODELS / f"{case.model}.onnx")
    feeds = make_feeds(model, case.run_shapes[-1], 5)
    actual = engine.create_execution_context().execute(feeds)
    for name, want in expected_outputs(case, feeds).items():
        if want.dtype.kind != "f":
            np.testing.assert_array_equal(actual[name], want)
            continue
        scale = float(np.abs(want).max())
        error = float(np.abs(actual[name].astype(np.float64) - want).max())
        assert error <= 1e-2 * scale, f"{case.model} output '{name}': max error {error:.3g} vs scale {scale:.3g}"


def test_cuda_graph_replay_of_mobilenet_is_identical() -> None:
    case = CASES[0]
    engine = build(case, level=0)
    model = onnx.load(MODELS / f"{case.model}.onnx")
    plain, graphed = engine.create_execution_context(), engine.create_execution_context()
    graphed.use_cuda_graph = True
    for seed in range(3):
        feeds = make_feeds(model, {"input": (2, 3, 224, 224)}, seed)
        want = plain.execute(feeds)
        got = graphed.execute(feeds)
        for name, reference in expected_outputs(case, feeds).items():  # not only equal to itself: right too
            np.testing.assert_allclose(want[name], reference, rtol=1e-4, atol=1e-4)
            np.testing.assert_array_equal(got[name], want[name])
    assert graphed.cuda_graph_captures == 1, engine.logger.messages
