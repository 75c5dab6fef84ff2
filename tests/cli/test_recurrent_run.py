"""`polyx run` / `convert` on a two-layer stacked LSTM with a dynamic sequence axis: the engine matches
onnxruntime at 1e-4 of the output scale, at several sequence lengths of one optimization profile."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from cli_test_models import run_cli
from onnx import TensorProto, helper, numpy_helper

from polyx.data.files import load_tensors

PROFILE = ["--min-shapes", "X:[1,2,8]", "--opt-shapes", "X:[7,2,8]", "--max-shapes", "X:[12,2,8]"]
FAST = ["--device", "cpu", "--builder-optimization-level", "0"]


def make_stacked_lstm(path) -> str:
    """X (seq, 2, 8) -> bidirectional LSTM (hidden 6) -> (seq, 2, 12) -> LSTM (hidden 5) -> Y2, Y_h2."""
    rng = np.random.default_rng(0)

    def weights(*shape):
        return (rng.standard_normal(shape) * 0.4).astype(np.float32)

    inits = [numpy_helper.from_array(array, name) for name, array in [
        ("W1", weights(2, 24, 8)), ("R1", weights(2, 24, 6)), ("B1", weights(2, 48)),
        ("W2", weights(1, 20, 12)), ("R2", weights(1, 20, 5)), ("B2", weights(1, 40)),
        ("merge_directions", np.array([0, 0, -1], np.int64))]]
    nodes = [helper.make_node("LSTM", ["X", "W1", "R1", "B1"], ["Y1"], name="lstm1", hidden_size=6,
                              direction="bidirectional"),
             helper.make_node("Transpose", ["Y1"], ["Y1_seq_batch_dir"], name="to_seq_batch", perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["Y1_seq_batch_dir", "merge_directions"], ["H1"], name="merge"),
             helper.make_node("LSTM", ["H1", "W2", "R2", "B2"], ["Y2", "Y_h2"], name="lstm2", hidden_size=5)]
    graph = helper.make_graph(nodes, "stacked_lstm",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["seq", 2, 8])],
                              [helper.make_tensor_value_info("Y2", TensorProto.FLOAT, ["seq", 1, 2, 5]),
                               helper.make_tensor_value_info("Y_h2", TensorProto.FLOAT, [1, 2, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return str(path)


def test_stacked_lstm_matches_onnxruntime(capsys, tmp_path):
    model = make_stacked_lstm(tmp_path / "stacked.onnx")
    # elementwise abs <= 1e-5 or rel <= 1e-5: within 1e-4 of the output scale whenever that is >= 0.1
    code, out, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST, *PROFILE, "--atol", "1e-5",
                             "--rtol", "1e-5")
    assert code == 0, out + err
    scales = [max(abs(float(low)), abs(float(high))) for low, high in
              re.findall(r"onnxrt   \| .*min=(\S+) at .*max=(\S+) at", out)]
    assert len(scales) == 2 and min(scales) >= 0.1, scales
    assert "onnxrt float32 (7, 1, 2, 5) vs engine float32 (7, 1, 2, 5)" in out
    assert out.strip().splitlines()[-1].startswith("RESULT: PASSED (2 tensor(s) compared")


def test_stacked_lstm_plan_at_other_sequence_lengths(capsys, tmp_path):
    """One plan, one profile (seq 1..12): each sequence length's engine outputs are within 1e-4 of the output
    scale of onnxruntime's, computed here."""
    model = make_stacked_lstm(tmp_path / "stacked.onnx")
    plan = tmp_path / "stacked.plan"
    code, out, err = run_cli(capsys, "convert", model, "-o", plan, *FAST, *PROFILE)
    assert code == 0, out + err
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for seq in (1, 4, 12):
        inputs, outputs = tmp_path / f"in{seq}.npz", tmp_path / f"out{seq}.npz"
        x = rng.uniform(-1, 1, (seq, 2, 8)).astype(np.float32)
        np.savez(inputs, X=x)
        code, out, err = run_cli(capsys, "run", plan, "--engine", "--device", "cpu", "--load-inputs", inputs,
                                 "--save-outputs", outputs)
        assert code == 0, out + err
        (engine_outputs,) = load_tensors(outputs)
        for name, want in zip(("Y2", "Y_h2"), session.run(None, {"X": x})):
            got = engine_outputs[name]
            assert got.shape == want.shape
            assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), (seq, name)


def test_docs_examples_run_as_written(capsys, tmp_path, monkeypatch):
    """docs/recurrent.md: the Python example (which asserts the engine matches onnxruntime) and the command."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "recurrent.md").read_text()
    monkeypatch.chdir(tmp_path)
    exec(compile(re.search(r"```python\n(.*?)```", text, re.DOTALL)[1], "docs/recurrent.md", "exec"), {})
    assert "(12, 2, 3, 8) 1" in capsys.readouterr().out
    (command,) = re.findall(r"```bash\n(polyx .*?)\n```", text, re.DOTALL)
    code, out, err = run_cli(capsys, *shlex.split(command)[1:])
    assert code == 0, out + err
    assert out.strip().splitlines()[-1].startswith("RESULT: PASSED (3 tensor(s) compared")


def _affine_rnn(path) -> str:
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [3, 2, 4])
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [3, 1, 2, 5])]
    inits = [numpy_helper.from_array(np.ones((1, 5, 4), np.float32), "W"),
             numpy_helper.from_array(np.ones((1, 5, 5), np.float32), "R")]
    node = helper.make_node("RNN", ["X", "W", "R"], ["Y"], name="rnn_affine", hidden_size=5,
                            activations=["Affine"], activation_alpha=[0.5], activation_beta=[0.1])
    model = helper.make_model(helper.make_graph([node], "affine", [x], outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return str(path)


def test_unsupported_activation_is_a_one_line_error_and_a_capability_report(capsys, tmp_path):
    model = _affine_rnn(tmp_path / "affine.onnx")
    code, out, err = run_cli(capsys, "run", model, "--engine", *FAST)
    assert code == 2 and "Traceback" not in out + err
    assert "polyx: error:" in err and "node 'rnn_affine' (RNN): attribute 'activations' [0] is 'Affine'" in err
    code, out, err = run_cli(capsys, "inspect", "capability", model)
    assert code == 0, out + err
    assert "[0] rnn_affine (RNN): attribute: attribute 'activations' [0] is 'Affine'" in out
