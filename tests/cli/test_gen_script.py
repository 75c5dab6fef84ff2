"""`polyx run --gen-script`: the written script (polyx.api) runs in a fresh interpreter and gives the verdict lines
and the exit code of the command it stands for; options it cannot express are refused, and it never replaces
an input file."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_test_models import make_mlp, run_cli

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--builder-optimization-level", "0", "--device", "cpu"]


def _verdicts(output: str) -> list[str]:
    """The per-tensor verdict lines and the RESULT line (timings and paths aside)."""
    return [line for line in output.splitlines() if line.startswith(("  PASSED |", "  FAILED |", "RESULT:"))]


def _run_script(path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=120,
                          cwd=path.parent)


@pytest.mark.parametrize("flags", [
    pytest.param([], id="defaults"),
    pytest.param(["--fp16", "--input-shapes", "x:[4,32]", "--iterations", "2", "--seed", "3", "--val-range",
                  "[-2,2]"], id="fp16-fails-at-default-tolerance"),
    pytest.param(["--fp16", "--min-shapes", "x:[1,32]", "--opt-shapes", "x:[3,32]", "--max-shapes", "x:[8,32]",
                  "--atol", "probs:1e-2", "--rtol", "1e-3", "--check-error-stat", "quantile", "--error-quantile",
                  "0.9"], id="profile-and-per-output-tolerance"),
    pytest.param(["--fp16", "--postprocess", "top-3", "--compare-func", "indices", "--index-tolerance", "1",
                  "--fail-fast"], id="top-k-indices"),
])
def test_generated_script_gives_the_commands_verdict(capsys, tmp_path, flags):
    model = make_mlp(tmp_path / "mlp.onnx")
    script = tmp_path / "check.py"
    code, out, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST, *flags)
    assert code in (0, 1), err
    written, message, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST, *flags, "--gen-script",
                                    script)
    assert written == 0 and f"Wrote script to {script}" in message, err
    finished = _run_script(script)
    assert finished.returncode == code, finished.stdout + finished.stderr
    assert _verdicts(finished.stdout) == _verdicts(out) and _verdicts(out)


def test_fp16_case_really_fails(capsys, tmp_path):
    """The parametrized cases cover both verdicts: FP16 at the default 1e-5 tolerances fails on this model."""
    model = make_mlp(tmp_path / "mlp.onnx")
    code, out, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST, "--fp16", "--val-range", "[-2,2]")
    assert code == 1 and "RESULT: FAILED" in out


def test_script_saves_and_loads_the_engine_as_the_command(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    plan, script = tmp_path / "mlp.plan", tmp_path / "check.py"
    code, _, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST, "--save-engine", plan,
                           "--gen-script", script)
    assert code == 0 and not plan.exists(), err  # writing the script runs nothing
    finished = _run_script(script)
    assert finished.returncode == 0 and plan.is_file(), finished.stderr
    code, out, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", "--load-engine", plan)
    loaded = tmp_path / "loaded.py"
    assert run_cli(capsys, "run", model, "--engine", "--onnxrt", "--load-engine", plan, "--gen-script", loaded)[0] == 0
    assert "EngineFromBytes(BytesFromPath(" in loaded.read_text()
    finished = _run_script(loaded)
    assert finished.returncode == code == 0 and _verdicts(finished.stdout) == _verdicts(out)


@pytest.mark.parametrize("extra, message", [
    (["--load-inputs", "inputs.npz"], "cannot express --load-inputs"),
    (["--mark-all"], "cannot express --mark-all"),
    (["--int8"], "cannot express --int8"),
    (["--bf16"], "cannot express --bf16;"),  # named as the flag, not as the BuildOptions field
    (["--strongly-typed"], "cannot express --strongly-typed;"),
])
def test_options_a_script_cannot_express_are_refused(capsys, tmp_path, extra, message):
    model = make_mlp(tmp_path / "mlp.onnx")
    (tmp_path / "inputs.npz").write_bytes(b"")
    extra = [str(tmp_path / e) if e.endswith(".npz") else e for e in extra]
    code, _, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", *extra, "--gen-script", tmp_path / "s.py")
    assert code == 2 and message in err
    assert not (tmp_path / "s.py").exists()


def test_gen_script_needs_both_runners_and_never_replaces_an_input(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    before = model.read_bytes()
    code, _, err = run_cli(capsys, "run", model, "--engine", "--gen-script", tmp_path / "s.py")
    assert code == 2 and "pass --engine and --onnxrt" in err
    code, _, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", "--gen-script", model)
    assert code == 2 and str(model) in err and model.read_bytes() == before
