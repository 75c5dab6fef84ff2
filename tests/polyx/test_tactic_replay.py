import json

import numpy as np
import pytest

import engine as trt
from engine.tactics.base import unregister_tactic
from polyx.errors import PolyxError
from polyx.tactic_replay import TacticRecorder, TacticReplayer, load_replay, save_replay


class _AddViaSubtractNegation(trt.Tactic):
    """A second, genuinely different SUM implementation: a - (-b)."""

    name = "test_sum_by_negation"
    layer_type = trt.LayerType.ELEMENTWISE
    heuristic_rank = 1

    def supports(self, ctx):
        return ctx.layer.params["op"] == trt.ElementWiseOperation.SUM

    def prepare(self, ctx):
        return None

    def run(self, state, inputs, outputs, workspace, xp):
        xp.subtract(inputs[0], -inputs[1], out=outputs[0])


@pytest.fixture
def extra_tactic():
    tactic = trt.register_tactic(_AddViaSubtractNegation())
    yield tactic
    unregister_tactic(tactic)


def _build(selector):
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    x = network.add_input("x", trt.DataType.FLOAT, (2, 3))
    w = network.add_constant((1, 3), np.array([[1.0, 2.0, 3.0]], np.float32)).get_output(0)
    s = network.add_elementwise(x, w, trt.ElementWiseOperation.SUM, name="add")
    network.mark_output(s.get_output(0))
    config = builder.create_builder_config()
    config.device = "cpu"
    config.algorithm_selector = selector
    plan = builder.build_serialized_network(network, config)
    return plan, trt.Runtime(builder.logger).deserialize_cuda_engine(plan)


def test_record_then_replay_reproduces_the_engine(tmp_path, extra_tactic):
    recorder = TacticRecorder()
    plan, engine = _build(recorder)
    assert set(recorder.replay) == {"add"}
    assert len(recorder.choices["add"]) == 2
    path = tmp_path / "tactics.json"
    save_replay(path, recorder.replay)
    replay = load_replay(path)
    # Force the other tactic: the engine changes, the result (exact for this op) does not.
    other = next(c for c in recorder.choices["add"] if c["tactic_id"] != replay["add"]["tactic_id"])
    forced_plan, forced = _build(TacticReplayer({"add": {"tactic_id": other["tactic_id"]}}))
    assert forced.layer_info()[0]["tactic_id"] == other["tactic_id"]
    replayed_plan, replayed = _build(TacticReplayer(replay))
    assert replayed.layer_info()[0]["tactic_id"] == replay["add"]["tactic_id"]
    assert replayed_plan == plan
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    expected = x.astype(np.float64) + np.array([1.0, 2.0, 3.0])
    for eng in (engine, forced, replayed):
        np.testing.assert_allclose(eng.create_execution_context().execute({"x": x})["add_output_0"], expected,
                                   rtol=1e-6)


def test_replaying_an_unavailable_tactic_is_a_clear_build_error(extra_tactic):
    with pytest.raises(trt.BuildError, match="layer 'add' recorded tactic"):
        _build(TacticReplayer({"add": {"tactic_id": 12345, "tactic": "gone"}}))


def test_bad_replay_files(tmp_path):
    with pytest.raises(PolyxError, match="no such file"):
        load_replay(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"layers": {}}))
    with pytest.raises(PolyxError, match="not a polyx tactic replay file"):
        load_replay(bad)
    bad.write_text(json.dumps({"format": "polyx-tactics", "version": 1, "layers": {"a": {}}}))
    with pytest.raises(PolyxError, match="malformed"):
        load_replay(bad)
