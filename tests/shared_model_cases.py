"""The shared exported models (../shared/models, or POLYX_MODELS_DIR) and how the model tests drive them: one
optimization profile per model, the shapes each run uses inside it, and seeded feeds. Used by the CPU test
(tests/engine/test_shared_models.py) and the GPU one (tests/gpu/test_gpu_shared_models.py)."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest

import engine as trt

# POLYX_MODELS_DIR points elsewhere (the GPU machine gets the models carried inside the repository).
MODELS = Path(os.environ.get("POLYX_MODELS_DIR") or Path(__file__).resolve().parents[2] / "shared" / "models")


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


def build_case(case: Case, device: str, configure: Callable[[trt.BuilderConfig], None] | None = None
               ) -> tuple[trt.Engine, bytes]:
    """(engine, plan) of the case's model with its one profile on `device`; `configure` sets the rest of the
    builder config (flags, tactic sources, level, selector). Skips the test when the model file is absent."""
    path = MODELS / f"{case.model}.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared models live next to the repository, in ../shared/models, "
                    "or where POLYX_MODELS_DIR points)")
    logger = trt.CapturingLogger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network()
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(path), parser.errors_text()
    config = builder.create_builder_config()
    config.device = device
    if configure is not None:
        configure(config)
    profile = builder.create_optimization_profile()
    for name, shapes in case.profile.items():
        profile.set_shape(name, *shapes)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    return trt.Runtime(logger).deserialize_cuda_engine(plan), plan


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
