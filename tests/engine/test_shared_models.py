"""The shared exported models (MobileNetV2, BERT-tiny, GPT-2-tiny) end to end: parse, build with one profile
spanning two batch sizes (and sequence lengths), run at two shapes inside it, compare with onnxruntime."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import engine as trt

MODELS = Path(__file__).resolve().parents[3] / "shared" / "models"
TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}


@dataclass(frozen=True)
class Case:
    model: str
    # per input: (min, opt, max) shapes of the one optimization profile
    profile: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]
    run_shapes: tuple[dict[str, tuple[int, ...]], ...]


CASES = [
    Case("mobilenet_v2", {"input": ((1, 3, 224, 224), (2, 3, 224, 224), (4, 3, 224, 224))},
         ({"input": (1, 3, 224, 224)}, {"input": (3, 3, 224, 224)})),
    Case("bert_tiny", {"input_ids": ((1, 4), (2, 8), (4, 16)), "attention_mask": ((1, 4), (2, 8), (4, 16))},
         ({"input_ids": (1, 5), "attention_mask": (1, 5)}, {"input_ids": (4, 16), "attention_mask": (4, 16)})),
    Case("gpt2_tiny", {"input_ids": ((1, 4), (2, 8), (4, 16))},
         ({"input_ids": (1, 7)}, {"input_ids": (3, 16)})),
]


def vocab_size(model: onnx.ModelProto) -> int:
    """Rows of the embedding table that `input_ids` indexes: the Gather reading an initializer with indices that
    are input_ids, possibly through Reshape/Identity/Cast/Flatten/Squeeze/Unsqueeze."""
    inits = {init.name: init for init in model.graph.initializer}
    ids = {"input_ids"}
    for node in model.graph.node:
        if node.op_type in ("Reshape", "Identity", "Cast", "Flatten", "Squeeze", "Unsqueeze") and node.input[0] in ids:
            ids.add(node.output[0])
        if node.op_type == "Gather" and node.input[1] in ids and node.input[0] in inits:
            return int(inits[node.input[0]].dims[0])
    raise AssertionError("no embedding Gather reads input_ids")


def make_feeds(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape in shapes.items():
        if name == "input_ids":
            feeds[name] = rng.integers(0, vocab_size(model), shape, dtype=np.int64)
        elif name == "attention_mask":
            mask = rng.integers(0, 2, shape, dtype=np.int64)
            mask[:, 0] = 1  # every sequence attends to at least one token
            feeds[name] = mask
        else:
            feeds[name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


@pytest.mark.parametrize("case", CASES, ids=[c.model for c in CASES])
def test_shared_model_matches_onnxruntime(case: Case) -> None:
    path = MODELS / f"{case.model}.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared models live next to the repository, in ../shared/models)")
    start = time.perf_counter()
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(path), parser.errors_text()
    config = builder.create_builder_config()
    config.device = "cpu"
    profile = builder.create_optimization_profile()
    for name, shapes in case.profile.items():
        profile.set_shape(name, *shapes)
    config.add_optimization_profile(profile)
    engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
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
