"""Reshape-only SHUFFLE layers as views on the GPU (engine/shuffle_views.py): bert_tiny against onnxruntime with
plain enqueue and with CUDA-graph replay (the views are made at bind time, so a replayed graph reads the same
arena), the hand-made view model at two shapes, and each view sharing its root's device memory."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from reshape_view_models import VIEW_LAYERS, reference, reshape_view_model, sample
from shared_model_cases import CASES, MODELS, build_case, make_feeds

import engine as trt
from engine.binding import BoundInputs, bind

pytestmark = pytest.mark.gpu
pytest.importorskip("cupy")


def test_bert_tiny_views_match_onnxruntime_plain_and_replayed() -> None:
    case = next(c for c in CASES if c.model == "bert_tiny")
    engine = build_case(case, "gpu", lambda config: setattr(config, "builder_optimization_level", 0))[0]
    views = [row["name"] for row in engine.layer_info() if row["view"]]
    assert views, "no SHUFFLE layer of bert_tiny became a view on the GPU"
    model = onnx.load(MODELS / "bert_tiny.onnx")
    session = ort.InferenceSession((MODELS / "bert_tiny.onnx").as_posix(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    plain, replayed = engine.create_execution_context(), engine.create_execution_context()
    replayed.use_cuda_graph = True
    for seed, shapes in enumerate(case.run_shapes):
        feeds = make_feeds(model, shapes, seed)
        want = dict(zip(names, session.run(None, feeds)))
        got_plain = plain.execute(feeds)
        for attempt in range(2):  # the first call captures, the second replays the graph
            got = replayed.execute(feeds)
            for name in names:
                np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4,
                                           err_msg=f"CUDA-graph run {attempt} of '{name}' at {shapes}")
                np.testing.assert_array_equal(got[name], got_plain[name],
                                              err_msg=f"replay differs from plain enqueue: '{name}' at {shapes}")
        for name in names:
            np.testing.assert_allclose(got_plain[name], want[name], rtol=1e-4, atol=1e-4,
                                       err_msg=f"plain enqueue of '{name}' at {shapes}")
    assert replayed.cuda_graph_captures == len(case.run_shapes), engine.logger.messages


def test_hand_made_views_on_the_gpu_share_memory_and_replay() -> None:
    logger = trt.CapturingLogger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(reshape_view_model().SerializeToString())
    config = builder.create_builder_config()
    config.device = "gpu"
    config.builder_optimization_level = 0
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 4), (2, 3, 4), (4, 3, 4))
    config.add_optimization_profile(profile)
    engine = trt.Runtime(logger).deserialize_cuda_engine(
        builder.build_serialized_network(network, config))
    assert {row["name"] for row in engine.layer_info() if row["view"]} == VIEW_LAYERS
    context = engine.create_execution_context()
    context.use_cuda_graph = True
    for batch in (1, 4, 1):
        x = sample(batch, seed=batch)
        for _ in range(2):
            got = context.execute({"x": x})
            for name, value in got.items():
                np.testing.assert_allclose(value, reference(x)[name], rtol=1e-5, atol=1e-6,
                                           err_msg=f"output '{name}' at batch {batch}")
        binding = bind(engine, BoundInputs(0, {engine.graph.inputs[0]: (batch, 3, 4)}, {}))
        for out, root in engine.view_roots.items():
            view, base = binding.slots[out], binding.slots[root]
            assert view.data.ptr == base.data.ptr and view.size == base.size, \
                f"'{engine.graph.tensors[out].name}' does not share the memory of '{engine.graph.tensors[root].name}'"
    assert context.cuda_graph_captures == 2, engine.logger.messages
