"""--save-engine / --load-engine on the commands that build besides `run` and `convert`: `bench` saves the plan it
times and times a loaded one; the debug searches write each candidate's plan to --save-engine before judging it
(Polygraphy's debug tools do the same), so a --check command can read the engine from that fixed path."""
from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime as ort
import pytest
from cli_test_models import make_mlp, run_cli

import engine as trt
from polyx.build import BuildOptions, build_engine
from polyx.tactic_replay import TacticRecorder

LEVEL0 = ("--builder-optimization-level", "0")
QUICK = ("--warmup", "0", "--duration", "0", "--iterations", "2")


def _engine(path) -> trt.Engine:
    return trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(path.read_bytes())


def test_bench_saves_the_plan_it_times_and_times_a_loaded_one(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    plan = tmp_path / "mlp.plan"
    code, out, err = run_cli(capsys, "bench", model, "--device", "cpu", *LEVEL0, *QUICK, "--shapes", "x:[4,32]",
                             "--save-engine", plan)
    assert code == 0 and f"Saved the engine to {plan}" in out, err
    x = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = _engine(plan).create_execution_context().execute({"x": x})["probs"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    code, out, err = run_cli(capsys, "bench", model, "--load-engine", plan, *QUICK, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["build"] is None and result["inputs"] == {"x": {"shape": [4, 32], "dtype": "float32"}}


def test_bench_engine_flag_errors(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    cases = [(["--load-engine", tmp_path / "none.plan"], "none.plan: no such file (--load-engine)"),
             (["--save-engine", model], str(model))]
    for args, message in cases:
        code, _, err = run_cli(capsys, "bench", model, "--device", "cpu", *LEVEL0, *QUICK, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    plan = tmp_path / "mlp.plan"
    assert run_cli(capsys, "convert", model, "-o", plan, "--device", "cpu", *LEVEL0)[0] == 0
    code, _, err = run_cli(capsys, "bench", plan, "--load-engine", plan, *QUICK)
    assert code == 2 and "is already an engine plan" in err


def test_debug_build_writes_each_build_before_the_check_reads_it(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    saved, artifacts = tmp_path / "debug.engine", tmp_path / "artifacts"
    script = tmp_path / "check.py"  # reads the fixed path, as a Polygraphy --check would
    script.write_text(f"import os, sys\nsys.exit(0 if os.path.getsize({str(saved)!r}) > 0 else 3)\n")
    code, out, err = run_cli(capsys, "debug", "build", model, *LEVEL0, "--until", "2", "--check",
                             f"{sys.executable} {script}", "--artifacts-dir", artifacts, "--save-engine", saved)
    assert code == 0 and "Builds: 2 (2 good, 0 bad)" in out, out + err
    assert saved.read_bytes() == (artifacts / "good" / "polyx_debug_iter2.engine").read_bytes()


def test_debug_tactics_check_reads_the_saved_candidate(capsys, tmp_path):
    """The check finds the candidate's tactic for one layer in the engine at --save-engine (no placeholder)."""
    model = make_mlp(tmp_path / "mlp.onnx")
    recorder = TacticRecorder()
    build_engine(model, BuildOptions(optimization_level=0, algorithm_selector=recorder))
    layer = next(name for name in ("fc2", "fc1") if len(recorder.choices[name]) > 1)
    bad = recorder.replay[layer]["tactic"]
    saved = tmp_path / "candidate.engine"
    script = tmp_path / "check.py"
    script.write_text("import sys\nimport engine as trt\n"
                      f"plan = open({str(saved)!r}, 'rb').read()\n"
                      "engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan)\n"
                      f"tactic = next(row['tactic'] for row in engine.layer_info() if row['name'] == {layer!r})\n"
                      f"sys.exit(1 if tactic == {bad!r} else 0)\n")
    code, out, err = run_cli(capsys, "debug", "tactics", model, *LEVEL0, "--save-engine", saved,
                             "--check", f"{sys.executable} {script}")
    assert code == 0, out + err
    assert f"Bad tactic: {bad} " in out
    assert _engine(saved).num_io_tensors == 2  # the last candidate, a usable plan


def test_debug_precision_and_reduce_engine_flag_errors(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, _, err = run_cli(capsys, "debug", "precision", model, "--fp16", "--save-engine", model)
    assert code == 2 and str(model) in err
    code, _, err = run_cli(capsys, "debug", "reduce", model, "--check", "true {model}", "-o", tmp_path / "min.onnx",
                           "--save-engine", tmp_path / "e.plan")
    assert code == 2 and "with --check, debug reduce builds no engine" in err
    code, _, err = run_cli(capsys, "debug", "tactics", model, "--check", "true")
    assert code == 2 and "names no candidate file" in err  # without --save-engine it could not see the candidate


@pytest.mark.gpu
def test_bench_saves_and_loads_a_gpu_plan(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    plan = tmp_path / "mlp_gpu.plan"
    code, _, err = run_cli(capsys, "bench", model, "--device", "gpu", *LEVEL0, *QUICK, "--save-engine", plan)
    assert code == 0, err
    assert _engine(plan).device == "gpu"
    code, out, err = run_cli(capsys, "bench", model, "--load-engine", plan, *QUICK, "--json")
    assert code == 0 and json.loads(out)["build"] is None, err
