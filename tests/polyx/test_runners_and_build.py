import json

import numpy as np
import pytest
from fc_model import write_fc_tanh_model

import engine as trt
from engine.tactics import tactics_for, unregister_tactic
from engine.timing_cache import TimingCache
from polyx.build import BuildOptions, build_engine
from polyx.errors import PolyxError
from polyx.runners import EngineRunner, OnnxrtRunner

RNG = np.random.default_rng(1)
W = RNG.standard_normal((6, 5)).astype(np.float32)
B = RNG.standard_normal(5).astype(np.float32)


@pytest.fixture
def model_path(tmp_path):
    return write_fc_tanh_model(tmp_path / "fc.onnx", W, B)


def _expected(x):
    return np.tanh(x.astype(np.float64) @ W.astype(np.float64) + B)


def _options(**kwargs):
    return BuildOptions(optimization_level=0, device="cpu", **kwargs)


def test_both_runners_match_a_float64_reference(model_path):
    x = RNG.standard_normal((3, 6)).astype(np.float32)
    engine, _, report = build_engine(model_path, _options(input_shapes={"x": (3, 6)}))
    for runner in (EngineRunner(engine), OnnxrtRunner(model_path)):
        with runner:
            assert runner.input_metadata() == {"x": ((-1, 6), np.dtype(np.float32))}
            outputs = runner.infer({"x": x})
            assert runner.last_inference_ms > 0
        np.testing.assert_allclose(outputs["y"], _expected(x), rtol=1e-5, atol=1e-6)
        assert not runner.is_active
    assert report.layers_before >= 3 and sum(sum(c.values()) for c in report.tactics_by_layer_type.values()) >= 1


def test_runner_must_be_active(model_path):
    with pytest.raises(PolyxError, match="activated"):
        OnnxrtRunner(model_path).infer({})


def test_profile_from_min_opt_max_shapes(model_path):
    options = _options(min_shapes={"x": (1, 6)}, opt_shapes={"x": (4, 6)}, max_shapes={"x": (8, 6)})
    engine, _, _ = build_engine(model_path, options)
    assert engine.get_tensor_profile_shape("x", 0) == ((1, 6), (4, 6), (8, 6))
    assert options.data_shapes() == {"x": (4, 6)}
    with EngineRunner(engine) as runner:
        x = RNG.standard_normal((7, 6)).astype(np.float32)
        np.testing.assert_allclose(runner.infer({"x": x})["y"], _expected(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options, message", [
    (dict(min_shapes={"x": (1, 6)}), "missing --opt-shapes, --max-shapes"),
    (dict(input_shapes={"nope": (1, 6)}), "'nope', which is not an input"),
    (dict(input_shapes={"x": (1, 7)}), "does not match the model's shape"),
    (dict(min_shapes={"x": (4, 6)}, opt_shapes={"x": (2, 6)}, max_shapes={"x": (8, 6)}), "min <= opt <= max"),
    (dict(layer_precisions={"fcc": "fp16"}), "no layer or ONNX node named 'fcc' \\(did you mean: fc"),
    (dict(layer_precisions={"fc": "fp8"}), "unknown precision 'fp8'"),
])
def test_bad_build_options(model_path, options, message):
    with pytest.raises(PolyxError, match=message):
        build_engine(model_path, _options(**options))


def test_layer_precision_by_onnx_node_is_obeyed(model_path):
    # marking "hb" keeps the Tanh from being fused into the Add
    engine, _, _ = build_engine(model_path, _options(layer_precisions={"tanh": "fp16"}, mark_outputs=["hb"]))
    precisions = {row["name"]: row["precision"] for row in engine.layer_info()}
    assert precisions["tanh"] == "HALF" and precisions["fc"] == "FLOAT"
    assert engine.meta["flags"]["OBEY_PRECISION_CONSTRAINTS"]


class _WorkspaceHungryTanh(trt.Tactic):
    """Correct, but asks for 1 MiB of workspace: only eligible under a large enough limit."""

    name = "test_workspace_hungry_tanh"
    layer_type = trt.LayerType.ACTIVATION
    heuristic_rank = 0

    def workspace_bytes(self, ctx):
        return 1 << 20

    def prepare(self, ctx):
        return next(t for t in tactics_for(self.layer_type, "cpu") if t is not self).prepare(ctx)

    def run(self, state, inputs, outputs, workspace, xp):
        next(t for t in tactics_for(self.layer_type, "cpu") if t is not self).run(state, inputs, outputs, None, xp)


def test_workspace_limit_excludes_tactics(model_path):
    tactic = trt.register_tactic(_WorkspaceHungryTanh())
    try:
        small, _, _ = build_engine(model_path, _options(workspace_bytes=512 << 10, mark_outputs=["hb"]))
        large, _, _ = build_engine(model_path, _options(workspace_bytes=2 << 20, mark_outputs=["hb"]))
    finally:
        unregister_tactic(tactic)
    tactic_of = lambda engine: {row["name"]: row["tactic"] for row in engine.layer_info()}["tanh"]  # noqa: E731
    assert tactic_of(small) != tactic.name and tactic_of(large) == tactic.name


def test_timing_cache_file_is_written_then_reused(model_path, tmp_path):
    cache_path = tmp_path / "cache.bin"
    options = BuildOptions(optimization_level=1, device="cpu", timing_cache=cache_path)
    build_engine(model_path, options)
    entries = len(TimingCache.deserialize(cache_path.read_bytes()))
    _, _, report = build_engine(model_path, options)
    assert entries >= 1 and report.timing_cache.startswith(f"{entries} hits, 0 misses")


def test_save_tactics_writes_a_replay_of_every_layer(model_path, tmp_path):
    path = tmp_path / "tactics.json"
    engine, _, _ = build_engine(model_path, _options(save_tactics=path))
    layers = json.loads(path.read_text())["layers"]
    device_layers = {row["name"]: row["tactic_id"] for row in engine.layer_info() if not row["host"]}
    assert {name: entry["tactic_id"] for name, entry in layers.items()} == device_layers
