"""`polyx data to-input`: Polygraphy's merge of input and output files into one input file."""
import json
from pathlib import Path

import numpy as np
from cli_test_models import run_cli

from polyx.data.files import load_tensors, save_tensors

DATA = Path(__file__).resolve().parents[1] / "data" / "polygraphy"


def test_inputs_and_polygraphy_outputs_merge_per_iteration(capsys, tmp_path):
    merged = tmp_path / "merged.npz"
    code, out, err = run_cli(capsys, "data", "to-input", DATA / "cnn_in.json", DATA / "cnn_out.json", "-o", merged)
    assert code == 0, err
    assert "Wrote 2 iteration(s) of 2 tensor(s)" in out
    inputs, outputs, result = (load_tensors(DATA / "cnn_in.json"), load_tensors(DATA / "cnn_out.json"),
                               load_tensors(merged))
    assert len(result) == 2
    for index in range(2):
        np.testing.assert_array_equal(result[index]["input"], inputs[index]["input"])
        np.testing.assert_array_equal(result[index]["logits"], outputs[index]["logits"])


def test_later_files_win_and_shorter_files_leave_later_iterations_alone(capsys, tmp_path):
    save_tensors(tmp_path / "a.npz", [{"x": np.zeros(2), "y": np.zeros(1)}, {"x": np.ones(2)}])
    save_tensors(tmp_path / "b.json", [{"x": np.full(2, 7.0)}])
    code, _, err = run_cli(capsys, "data", "to-input", tmp_path / "a.npz", tmp_path / "b.json",
                           "-o", tmp_path / "m.json", "--save-format", "polygraphy")
    assert code == 0, err
    doc = json.loads((tmp_path / "m.json").read_text())
    assert isinstance(doc, list) and doc[0]["x"]["polygraphy_class"] == "ndarray"
    result = load_tensors(tmp_path / "m.json")
    np.testing.assert_array_equal(result[0]["x"], [7.0, 7.0])
    np.testing.assert_array_equal(result[0]["y"], [0.0])
    np.testing.assert_array_equal(result[1]["x"], [1.0, 1.0])


def test_every_runner_of_run_results_is_merged(capsys, tmp_path):
    code, out, err = run_cli(capsys, "data", "to-input", DATA / "two_runners.json", "-o", tmp_path / "m.npz")
    assert code == 0 and "Wrote 2 iteration(s) of 1 tensor(s)" in out, err
    last_runner = load_tensors(DATA / "two_runners.json", runner="onnxrt-runner-N1")
    for merged, expected in zip(load_tensors(tmp_path / "m.npz"), last_runner):
        np.testing.assert_array_equal(merged["logits"], expected["logits"])


def test_writing_over_an_input_is_refused(capsys, tmp_path):
    path = tmp_path / "a.npz"
    save_tensors(path, [{"x": np.zeros(2)}])
    code, _, err = run_cli(capsys, "data", "to-input", path, "-o", path)
    assert code == 2 and "is also an input" in err
    np.testing.assert_array_equal(load_tensors(path)[0]["x"], np.zeros(2))
