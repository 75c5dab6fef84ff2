"""polyx.api, the Polygraphy-style scripting API: the docs/scripting.md example runs as written, loaders are lazy,
the DataLoader makes the same inputs as `polyx run`, the comparator's verdicts match hand-computed cases, and
misuse is a one-line error naming what is wrong."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from cli_test_models import make_mlp

import engine as trt
from polyx.api import (
    BytesFromPath,
    Comparator,
    CompareFunc,
    CreateConfig,
    DataLoader,
    EngineFromBytes,
    EngineFromNetwork,
    EngineRunner,
    NetworkFromOnnxPath,
    OnnxrtRunner,
    Profile,
    RunResults,
    SaveEngine,
    TensorMetadata,
    TrtRunner,
)
from polyx.cli.app import main
from polyx.compare.run_comparison import RunnerOutputs
from polyx.data.files import load_tensors
from polyx.errors import PolyxError

ROOT = Path(__file__).resolve().parents[2]
CPU = {"device": "cpu", "builder_optimization_level": 0}


def test_docs_example_runs_as_written(tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "docs" / "scripting.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL)[1]
    namespace: dict = {}
    exec(compile(code, "docs/scripting.md", "exec"), namespace)  # its own asserts check the verdicts
    assert (tmp_path / "cnn_fp16.plan").is_file()
    session = ort.InferenceSession(str(ROOT / "examples/models/cnn.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(["logits"], namespace["results"].feeds[0])[0]
    np.testing.assert_allclose(namespace["outputs"]["logits"], expected, atol=1e-2, rtol=1e-2)  # FP16 engine


def test_loaders_do_nothing_until_called(tmp_path):
    plan = tmp_path / "mlp.plan"
    missing = NetworkFromOnnxPath(tmp_path / "absent.onnx")  # no error yet
    saved = SaveEngine(EngineFromNetwork(NetworkFromOnnxPath(make_mlp(tmp_path / "mlp.onnx")),
                                         CreateConfig(**CPU)), plan)
    assert not plan.exists()
    engine = saved()
    assert isinstance(engine, trt.Engine) and plan.read_bytes() == engine.serialize()
    with pytest.raises(PolyxError, match="absent.onnx: no such file"):
        missing()


def test_engine_runner_results_match_onnxruntime_and_a_reloaded_plan(tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    plan = tmp_path / "mlp.plan"
    build = SaveEngine(EngineFromNetwork(NetworkFromOnnxPath(model), CreateConfig(
        profiles=[Profile().add("x", (1, 32), (3, 32), (6, 32))], **CPU)), plan)
    meta = TensorMetadata().add("x", None, (5, 32))
    results = Comparator.run([OnnxrtRunner(str(model)), TrtRunner(build)],
                             DataLoader(iterations=2, input_metadata=meta))
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    for feeds, outputs in zip(results.feeds, results[1].iterations):
        assert feeds["x"].shape == (5, 32)
        np.testing.assert_allclose(outputs["probs"], session.run(None, feeds)[0], rtol=1e-5, atol=1e-6)
    with EngineRunner(EngineFromBytes(BytesFromPath(plan))) as runner:
        again = runner.infer(results.feeds[1])
    np.testing.assert_array_equal(again["probs"], results[1].iterations[1]["probs"])
    assert Comparator.compare_accuracy(results, CompareFunc.simple(atol=1e-5))


def test_data_loader_makes_the_inputs_polyx_run_makes(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    saved = tmp_path / "inputs.npz"
    assert main(["run", str(model), "--onnxrt", "--seed", "7", "--iterations", "2", "--val-range", "[-3,3]",
                 "--input-shapes", "x:[2,32]", "--save-inputs", str(saved)]) == 0
    capsys.readouterr()
    loader = DataLoader(seed=7, iterations=2, val_range=(-3, 3),
                        input_metadata=TensorMetadata().add("x", None, (2, 32)))
    with OnnxrtRunner(str(model)) as runner:
        made = list(loader.feeds(runner.input_metadata()))
    for ours, cli in zip(made, load_tensors(saved), strict=True):
        np.testing.assert_array_equal(ours["x"], cli["x"])
        assert ours["x"].min() >= -3 and ours["x"].max() <= 3 and ours["x"].min() < 0  # the range took effect


def _results(*arrays: list[float]) -> RunResults:
    outputs = [RunnerOutputs(f"r{i}", [{"a": np.array(a)}], [0.0]) for i, a in enumerate(arrays)]
    return RunResults(outputs, [{}])


def test_compare_accuracy_verdicts_on_hand_made_results():
    results = _results([1.0, 2.0, 4.0], [1.0, 2.0, 4.1], [1.0, 2.0, 4.1])
    # |4.1 - 4| = 0.1: fails atol 0.05 (rel 0.025 > rtol 0), passes atol 0.2
    assert not Comparator.compare_accuracy(results, CompareFunc.simple(atol=0.05, rtol=0))
    assert Comparator.compare_accuracy(results, CompareFunc.simple(atol={"": 0.0, "a": 0.2}, rtol=0))
    assert Comparator.compare_accuracy(results, CompareFunc.simple(atol=0, rtol=0.03))  # 0.1 / 4 = 0.025
    consecutive = Comparator.compare_accuracy(results, CompareFunc.simple(atol=0, rtol=0))
    assert [(c.reference_runner, c.candidate_runner, c.passed) for c in consecutive.comparisons] == \
        [("r0", "r1", False), ("r1", "r2", True)]
    only_last = Comparator.compare_accuracy(results, CompareFunc.simple(atol=0, rtol=0), comparisons=[(1, 2)])
    assert only_last and only_last.report()[-1].startswith("RESULT: PASSED (1 tensor(s) compared")
    failed = Comparator.compare_accuracy(results, CompareFunc.simple(atol=0, rtol=0), fail_fast=True)
    assert len(failed.comparisons) == 1 and failed.report()[-1].startswith("RESULT: FAILED")
    judged = Comparator.compare_accuracy(results, CompareFunc.user(lambda ref, out: {"a": True}))
    assert judged


def test_misuse_is_a_one_line_error(tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    with pytest.raises(PolyxError, match="CreateConfig: unknown setting 'fp17'"):
        CreateConfig(fp17=True)
    with pytest.raises(PolyxError, match="memory pool 'dla'"):
        CreateConfig(memory_pool_limits={"dla": 1})
    with pytest.raises(PolyxError, match="EngineFromNetwork: expected a network"):
        EngineFromNetwork("model.onnx")()
    with pytest.raises(PolyxError, match="EngineFromBytes: expected bytes"):
        EngineFromBytes(lambda: 42)()
    with pytest.raises(trt.errors.PlanFormatError):
        EngineFromBytes(b"not a plan")()
    with pytest.raises(PolyxError, match="runner 'engine': expected an engine or a loader returning one"):
        EngineRunner(lambda: "engine").input_metadata()
    with pytest.raises(PolyxError, match="runner names must differ"):
        Comparator.run([OnnxrtRunner(str(model)), OnnxrtRunner(str(model))])
    with pytest.raises(PolyxError, match="input_metadata names 'y', which is not an input"):
        Comparator.run([OnnxrtRunner(str(model))], DataLoader(input_metadata=TensorMetadata().add("y", None, (1,))))
    with pytest.raises(PolyxError, match="needs the results of at least two runners"):
        Comparator.compare_accuracy(_results([1.0]))
    renamed = RunResults([RunnerOutputs("r0", [{"a": np.zeros(1)}], [0.0]),
                          RunnerOutputs("r1", [{"zzz": np.zeros(1)}], [0.0])], [{}])
    with pytest.raises(PolyxError, match="no tensor to compare"):
        Comparator.compare_accuracy(renamed)


@pytest.mark.gpu
def test_gpu_engine_through_the_api_matches_onnxruntime(tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    build = EngineFromNetwork(NetworkFromOnnxPath(model), CreateConfig(device="gpu"))
    results = Comparator.run([OnnxrtRunner(str(model)), EngineRunner(build)], DataLoader(iterations=2))
    assert Comparator.compare_accuracy(results, CompareFunc.simple(atol=1e-4, rtol=1e-4))
    assert EngineRunner(build).engine.device == "gpu"
