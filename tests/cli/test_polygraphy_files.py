"""`polyx run` with Polygraphy's files: the golden pair Polygraphy 0.53.6 wrote for examples/models/cnn.onnx
(tests/data/polygraphy) passes on the engine and fails, naming the tensor, once a weight is perturbed; several
files per flag chain their iterations; a runner of RunResults is picked by name; --save-format polygraphy."""
import json
from pathlib import Path

import numpy as np
import onnx
from cli_test_models import run_cli
from onnx import numpy_helper

from polyx.data.files import load_tensors

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "polygraphy"
CNN = ROOT / "examples" / "models" / "cnn.onnx"
FAST = ["--device", "cpu", "--builder-optimization-level", "0"]
GOLDEN = ["--load-inputs", DATA / "cnn_in.json", "--load-outputs", DATA / "cnn_out.json"]


def test_polygraphys_golden_pair_passes_on_the_engine(capsys):
    code, out, err = run_cli(capsys, "run", CNN, "--trt", *FAST, *GOLDEN)
    assert code == 0, out + err
    assert "RESULT: PASSED (1 tensor(s) compared over 2 iteration(s) against golden (cnn_out.json))" in out


def test_a_perturbed_weight_fails_naming_the_tensor(capsys, tmp_path):
    model = onnx.load(CNN)
    weight = next(init for init in model.graph.initializer if init.name == "fc.weight")
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.01, "fc.weight"))
    onnx.save(model, tmp_path / "perturbed.onnx")
    code, out, err = run_cli(capsys, "run", tmp_path / "perturbed.onnx", "--trt", *FAST, *GOLDEN)
    assert code == 1, out + err
    assert "FAILED | 'logits'" in out and "RESULT: FAILED" in out


def test_several_files_per_flag_chain_their_iterations(capsys):
    code, out, err = run_cli(capsys, "run", CNN, "--trt", *FAST,
                             "--load-inputs", DATA / "cnn_in.json", DATA / "cnn_in.json",
                             "--load-outputs", DATA / "cnn_out.json", DATA / "cnn_out.json")
    assert code == 0, out + err
    assert "compared over 4 iteration(s)" in out


def test_a_runner_of_run_results_is_picked_by_name(capsys):
    base = ["run", CNN, "--trt", *FAST, "--load-inputs", DATA / "cnn_in.json",
            "--load-outputs", DATA / "two_runners.json"]
    code, out, err = run_cli(capsys, *base, "--load-outputs-runner", "onnxrt-runner-N1")
    assert code == 0 and "RESULT: PASSED" in out, out + err
    code, _, err = run_cli(capsys, *base)
    assert code == 2 and "holds the results of 2 runners" in err and "--load-outputs-runner" in err
    code, _, err = run_cli(capsys, "run", CNN, "--trt", "--load-outputs-runner", "onnxrt")
    assert code == 2 and "pass --load-outputs too" in err


def test_save_format_polygraphy_writes_every_runner_and_reads_back(capsys, tmp_path):
    inputs, outputs = tmp_path / "in.json", tmp_path / "out.json"
    code, out, err = run_cli(capsys, "run", CNN, "--trt", "--onnxrt", *FAST, "--iterations", "2",
                             "--save-format", "polygraphy", "--save-inputs", inputs, "--save-outputs", outputs)
    assert code == 0, out + err
    doc = json.loads(outputs.read_text())
    assert doc["polygraphy_class"] == "RunResults" and [runner for runner, _ in doc["lst"]] == ["engine", "onnxrt"]
    assert json.loads(inputs.read_text())[0]["input"]["polygraphy_class"] == "ndarray"
    engine_outputs = load_tensors(outputs, runner="engine")
    assert len(engine_outputs) == 2 and engine_outputs[0]["logits"].shape == (1, 10)
    assert not np.array_equal(engine_outputs[0]["logits"], engine_outputs[1]["logits"])
    code, out, err = run_cli(capsys, "run", CNN, "--trt", *FAST, "--load-inputs", inputs, "--load-outputs", outputs,
                             "--load-outputs-runner", "onnxrt")
    assert code == 0 and "compared over 2 iteration(s)" in out, out + err
    code, _, err = run_cli(capsys, "run", CNN, "--trt", "--save-format", "polygraphy", "--save-outputs",
                           tmp_path / "out.npz")
    assert code == 2 and "--save-format polygraphy writes JSON; name the file *.json" in err
    assert not (tmp_path / "out.npz").exists()


def test_inspect_data_shows_one_runner_of_run_results(capsys):
    code, out, err = run_cli(capsys, "inspect", "data", DATA / "two_runners.json", "--runner", "onnxrt-runner-N1",
                             "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert len(report["iterations"]) == 2
    code, _, err = run_cli(capsys, "inspect", "data", DATA / "two_runners.json")
    assert code == 2 and "inspect data: --runner NAME" in err


def test_polygraphys_streamed_directories_load_in_iteration_order(capsys, tmp_path):
    """`polygraphy run ... --save-inputs cnn_in_dir --save-outputs cnn_out_dir --iterations 2` (one file per
    iteration), with the same default seed as the single-file pair."""
    code, out, err = run_cli(capsys, "run", CNN, "--trt", *FAST, "--load-inputs", DATA / "cnn_in_dir",
                             "--load-outputs", DATA / "cnn_out_dir", "--save-inputs", tmp_path / "in.npz")
    assert code == 0 and "compared over 2 iteration(s)" in out, out + err
    streamed, single = load_tensors(tmp_path / "in.npz"), load_tensors(DATA / "cnn_in.json")
    for a, b in zip(streamed, single, strict=True):
        np.testing.assert_array_equal(a["input"], b["input"])
    code, out, err = run_cli(capsys, "data", "to-input", DATA / "cnn_in_dir", DATA / "cnn_out_dir",
                             "-o", tmp_path / "merged.npz")
    assert code == 0 and "Wrote 2 iteration(s) of 2 tensor(s)" in out, err
    code, _, err = run_cli(capsys, "run", CNN, "--trt", "--load-inputs", tmp_path)
    assert code == 2 and "without any per-iteration .json file" in err
