"""The shared exported models (MobileNetV2, BERT-tiny, GPT-2-tiny) end to end: parse, build with one profile
spanning two batch sizes (and sequence lengths), run at two shapes inside it, compare with onnxruntime."""
from __future__ import annotations

import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from shared_model_cases import CASES, MODELS, Case, build_case, make_feeds

TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}


@pytest.mark.parametrize("case", CASES, ids=[c.model for c in CASES])
def test_shared_model_matches_onnxruntime(case: Case) -> None:
    path = MODELS / f"{case.model}.onnx"
    start = time.perf_counter()
    engine, _ = build_case(case, "cpu")
    assert engine.num_optimization_profiles == 1
    for name in case.profile:
        assert -1 in engine.get_tensor_shape(name)

    model = onnx.load(path)
    session = ort.InferenceSession(path.as_posix(), providers=["CPUExecutionProvider"])
    output_names = [o.name for o in session.get_outputs()]
    context = engine.create_execution_context()
    for seed, shapes in enumerate(case.run_shapes):
        feeds = make_feeds(model, shapes, seed)
        expected = dict(zip(output_names, session.run(None, feeds)))
        actual = context.execute(feeds)
        assert set(actual) == set(expected)
        for name, value in expected.items():
            assert actual[name].shape == value.shape and actual[name].dtype == value.dtype
            np.testing.assert_allclose(actual[name], value, err_msg=f"{case.model} output '{name}' at {shapes}",
                                       **TOLERANCE)
    print(f"{case.model}: parse + build + 2 runs in {time.perf_counter() - start:.1f} s")
