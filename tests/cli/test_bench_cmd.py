import json
import re

import numpy as np
import onnxruntime as ort
import pytest
from cli_test_models import make_mlp, run_cli

import engine as trt
from polyx.bench import BenchOptions, TimingSettings, run_bench
from polyx.build import BuildOptions
from polyx.data.loader import DataLoader

FAST = ["--device", "cpu", "--builder-optimization-level", "0", "--warmup", "0", "--duration", "0"]


@pytest.fixture
def mlp(tmp_path):
    return make_mlp(tmp_path / "mlp.onnx")


def test_bench_prints_throughput_latency_and_build_summary(capsys, mlp):
    code, out, err = run_cli(capsys, "bench", mlp, *FAST, "--iterations", "25", "--shapes", "x:[4,32]")
    assert code == 0, err
    assert "Build summary:" in out and "Inputs: x float32 [4, 32] (batch 4)" in out
    assert "Timed runs: 25 in" in out
    qps, per_second = (float(v) for v in re.search(r"Throughput: ([\d.]+) qps, ([\d.]+) inferences/s", out).groups())
    assert per_second == pytest.approx(4 * qps, rel=1e-3)
    rows = {line.split(" (ms)")[0]: [float(v) for v in line.split(")")[1].split()]
            for line in out.splitlines() if " (ms)" in line}
    assert set(rows) == {"Latency", "Enqueue", "H2D", "Compute", "D2H"}
    low, mean, median, p90, p99, high = rows["Latency"]
    assert 0 < low <= median <= p90 <= p99 <= high and low <= mean <= high
    assert rows["H2D"] == [0.0] * 6 and rows["D2H"] == [0.0] * 6
    assert "Note: CPU engine: inputs and outputs stay in host memory, so H2D and D2H are 0" in out


def test_bench_json_on_stdout_is_the_only_output(capsys, mlp):
    code, out, err = run_cli(capsys, "bench", mlp, *FAST, "--iterations", "6", "--streams", "2", "--json",
                             "--input-shapes", "x:[2,32]")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema"] == "polyx-bench/1" and doc["runs_per_stream"] == [6, 6] and doc["runs"] == 12
    assert doc["settings"]["streams"] == 2 and doc["batch"] == 2
    assert doc["throughput"]["qps"] == pytest.approx(12 / doc["total_seconds"])


def test_bench_writes_json_file_and_layer_profile(capsys, mlp, tmp_path):
    result, layers = tmp_path / "bench.json", tmp_path / "layers.json"
    code, out, err = run_cli(capsys, "bench", mlp, *FAST, "--iterations", "3", "--json-file", result,
                             "--export-profile", layers, "-v")
    assert code == 0, err
    doc, profile = json.loads(result.read_text()), json.loads(layers.read_text())
    assert doc["runs"] == 3 and doc["layer_profile"] == profile
    assert {layer["name"] for layer in profile["layers"]} == {"fc1", "fc2", "softmax"}  # bias1 and relu fused
    assert "Per-layer times (3 profiled runs" in out and f"Saved per-layer profile to {layers}" in out
    assert f"Wrote JSON result to {result}" in out


def test_bench_a_plan_with_runtime_shapes_inside_its_profile(capsys, mlp, tmp_path):
    plan = tmp_path / "mlp.plan"
    code, _, err = run_cli(capsys, "convert", mlp, "-o", plan, "--device", "cpu", "--builder-optimization-level",
                           "0", "--min-shapes", "x:[1,32]", "--opt-shapes", "x:[4,32]", "--max-shapes", "x:[8,32]")
    assert code == 0, err
    code, out, err = run_cli(capsys, "bench", plan, "--warmup", "0", "--duration", "0", "--iterations", "2",
                             "--json", "--shapes", "x:[6,32]")
    assert code == 0, err
    assert json.loads(out)["inputs"] == {"x": {"shape": [6, 32], "dtype": "float32"}}
    assert json.loads(out)["build"] is None
    code, out, _ = run_cli(capsys, "bench", plan, "--warmup", "0", "--duration", "0", "--iterations", "2", "--json")
    assert code == 0 and json.loads(out)["batch"] == 4                       # the profile's opt shape
    code, _, err = run_cli(capsys, "bench", plan, "--shapes", "x:[9,32]")
    assert code == 2 and "outside optimization profile" in err and len(err.strip().splitlines()) == 1


def test_bench_outputs_are_the_models(mlp):
    """The engine the command benchmarks computes what onnxruntime computes on the same seeded inputs."""
    result = run_bench(BenchOptions(model=mlp, build=BuildOptions(optimization_level=0, device="cpu"),
                                    timing=TimingSettings(0, 1, 0)))
    x = next(iter(DataLoader({"x": ((-1, 32), np.float32)}, seed=1)))["x"]
    expected = ort.InferenceSession(str(mlp), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(result.outputs[0]["probs"], expected, rtol=1e-5, atol=1e-7)
    assert result.engine.device == "cpu" and isinstance(result.engine, trt.Engine)


@pytest.mark.parametrize(("args", "message"), [
    (["--use-cuda-graph"], "--use-cuda-graph needs a GPU engine"),
    (["--streams", "0"], "--streams"),
    (["--iterations", "0"], "--iterations"),
    (["--warmup", "-5"], "--warmup"),
    (["--duration", "-1"], "--duration"),
    (["--shapes", "x:4,32"], "--shapes 'x:4,32': expected NAME:[d0,d1,...]"),
    (["--shapes", "x:[4,32]", "--input-shapes", "x:[2,32]"], "--shapes and --input-shapes both give"),
    (["--shapes", "y:[4,32]"], "shape given for 'y', which is not an input"),
    (["--export-profile", "/nonexistent-dir/layers.json"], "does not exist"),
    (["--json-file", "/nonexistent-dir/bench.json"], "does not exist"),
])
def test_bench_usage_errors_are_one_line_exit_2(capsys, mlp, args, message):
    code, out, err = run_cli(capsys, "bench", mlp, "--device", "cpu", "--builder-optimization-level", "0", *args)
    assert code == 2 and message in err and err.startswith("polyx: error:"), err
    assert len(err.strip().splitlines()) == 1 and out == ""


def test_bench_missing_model(capsys, tmp_path):
    code, _, err = run_cli(capsys, "bench", tmp_path / "nope.onnx")
    assert code == 2 and "nope.onnx: no such file" in err
