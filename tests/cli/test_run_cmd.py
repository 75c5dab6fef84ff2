"""`polyx run`: engine vs onnxruntime on the shared models, first-divergence localisation of an injected error,
saved data round trips, and one-line errors (exit code 2) for bad input."""
from __future__ import annotations

import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from cli_test_models import make_mlp, run_cli, shared_model

import engine as trt
from engine.tactics import tactics_for, unregister_tactic
from polyx.data.files import load_tensors, save_tensors
from polyx.tactic_replay import save_replay

FAST = ["--builder-optimization-level", "0", "--device", "cpu"]
SHAPES = {"mobilenet_v2": [], "bert_tiny": ["--input-shapes", "input_ids:[2,16] attention_mask:[2,16]"],
          "gpt2_tiny": ["--input-shapes", "input_ids:[2,16]"]}


def _compared_count(output: str) -> int:
    return int(re.search(r"Per-tensor comparison: (\d+) tensors compared", output).group(1))


def _onnx_intermediate_count(path) -> int:
    """Independent count: every non-Constant node output whose type ONNX shape inference knows."""
    model = onnx.load(path)
    inferred = onnx.shape_inference.infer_shapes(model).graph
    typed = {v.name for v in list(inferred.value_info) + list(inferred.output) if v.type.tensor_type.elem_type}
    return sum(1 for n in model.graph.node if n.op_type != "Constant" for o in n.output if o and o in typed)


@pytest.mark.parametrize("name", list(SHAPES))
def test_shared_models_pass_at_default_tolerances(capsys, name):
    code, out, err = run_cli(capsys, "run", shared_model(name), "--engine", "--onnxrt", *FAST, *SHAPES[name])
    assert code == 0, out + err
    assert "atol=1e-05, rtol=1e-05" in out
    assert out.strip().splitlines()[-1].startswith("RESULT: PASSED (1 tensor(s) compared")


def _node_output_count(path) -> int:
    """Independent count: every output of a non-Constant node."""
    return sum(1 for n in onnx.load(path).graph.node if n.op_type != "Constant" for o in n.output if o)


@pytest.mark.parametrize("name", list(SHAPES))
def test_mark_all_outputs_compares_every_intermediate_tensor(capsys, name):
    """Polygraphy's mark-all (every tensor an output, fusions broken) stays available by its own flag."""
    path = shared_model(name)
    code, out, err = run_cli(capsys, "run", path, "--engine", "--onnxrt", "--mark-all-outputs", *FAST, *SHAPES[name])
    assert code == 0, out + err
    assert _compared_count(out) == _onnx_intermediate_count(path) > 100
    assert "First divergence: none" in out


@pytest.mark.parametrize("name", list(SHAPES))
def test_mark_all_compares_the_engine_as_built_and_accounts_for_every_onnx_tensor(capsys, name):
    path = shared_model(name)
    code, out, err = run_cli(capsys, "run", path, "--engine", "--onnxrt", "--mark-all", *FAST, *SHAPES[name])
    assert code == 0, out + err
    counts = re.search(r"ONNX tensors: (\d+) at layer boundaries, (\d+) inside fused layers, 0 stored as INT8 "
                       r"\(compared dequantized\), (\d+) removed", out)
    boundary, inside, removed = (int(g) for g in counts.groups())
    assert boundary + inside + removed == _node_output_count(path)
    assert _compared_count(out) == boundary < _onnx_intermediate_count(path)  # fusions were kept
    assert "First divergence: none" in out and "First failing engine layer: none" in out


def test_polygraphy_spelling_of_mark_all(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, out, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST, "--onnx-outputs", "mark", "all",
                           "--engine-outputs", "mark", "all")
    # the engine as built: fc1 + bias1 + relu are one layer, so a1, logits and probs are its boundary tensors
    assert code == 0 and _compared_count(out) == 3
    assert "Inside fused layer fc1 (matmul+add+relu): h1, h1b (compared at a1: PASSED" in out


class _Perturbed(trt.Tactic):
    """Wraps the layer type's best correct tactic and scales its output by 1.01, for one named layer only."""

    heuristic_rank = -1

    def __init__(self, layer_type, target: str | None, name: str):
        self.layer_type, self.target, self.name = layer_type, target, name
        self.correct = min((t for t in tactics_for(layer_type, "cpu") if not t.runs_int8),
                           key=lambda t: t.heuristic_rank)

    def supports(self, ctx):
        return self.target is None or ctx.layer.name == self.target

    def prepare(self, ctx):
        return self.correct.prepare(ctx)

    def run(self, state, inputs, outputs, workspace, xp):
        self.correct.run(state, inputs, outputs, workspace, xp)
        outputs[0] *= 1.01


@pytest.fixture
def registered():
    tactics = []
    yield lambda tactic: tactics.append(trt.register_tactic(tactic)) or tactic
    for tactic in tactics:
        unregister_tactic(tactic)


def test_injected_error_is_named_as_first_divergence(capsys, tmp_path, registered):
    node = "/features/features.7/conv/conv.1/conv.1.0/Conv"
    registered(_Perturbed(trt.LayerType.CONVOLUTION, node, "test_wrong_conv"))
    report = tmp_path / "report.html"
    code, out, err = run_cli(capsys, "run", shared_model("mobilenet_v2"), "--engine", "--onnxrt", "--mark-all",
                             *FAST, "--report", report)
    assert code == 1, out + err
    # The engine as built: the convolution, its BatchNorm and its Clip (ReLU6) are one layer, whose output is
    # the first tensor read back after the wrong tactic ran.
    clip = node.replace("conv.1.0/Conv", "conv.1.2/Clip")
    lines = [line for line in out.splitlines() if line.startswith("First divergence:")]
    assert lines == [lines[0]] and lines[0].startswith(f"First divergence: {clip}_output_0 (node {clip}, op Clip)")
    assert f"engine layer: {node} (CONVOLUTION, tactic test_wrong_conv)" in out
    assert f"First failing engine layer: {node} (CONVOLUTION conv+bn+clip, FLOAT, tactic test_wrong_conv) output " \
           f"'{clip}_output_0'" in out
    assert "every input is within tolerance: the error is created in this layer" in out
    assert out.splitlines()[-2].startswith("RESULT: FAILED")
    page = report.read_text()
    assert "<svg" in page and f"First divergence: {clip}_output_0" in page
    assert not re.search(r"<script|<link|src=|url\(", page)  # self-contained
    assert page.count("<circle") == _compared_count(out)
    layers = int(re.search(r"Engine layers as built: \d+ layer\(s\), \d+ fused, (\d+) compared", out).group(1))
    assert page.count("<rect class='layer'") == layers and page.count("<text class='fused'") > 0
    assert f"First failing engine layer: {node} (CONVOLUTION conv+bn+clip" in page


def test_tactic_forced_by_replay_file_is_localised(capsys, tmp_path, registered):
    model = make_mlp(tmp_path / "mlp.onnx")
    wrong = _Perturbed(trt.LayerType.MATRIX_MULTIPLY, None, "test_wrong_matmul")
    wrong.heuristic_rank = 10_000  # never chosen unless forced
    registered(wrong)
    replay = tmp_path / "replay.json"
    save_replay(replay, {"fc2": {"tactic_id": wrong.id, "tactic": wrong.name, "layer_type": "MATRIX_MULTIPLY"}})
    code, out, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST)
    assert code == 0
    code, out, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST, "--mark-all", "--load-tactics",
                           replay, "-q")
    assert code == 1
    assert out.splitlines()[0].startswith("First divergence: logits (node fc2, op MatMul)")
    assert out.splitlines()[1].startswith("First failing engine layer: fc2 (MATRIX_MULTIPLY, FLOAT, tactic "
                                          "test_wrong_matmul) output 'logits'")
    assert out.splitlines()[2].startswith("RESULT: FAILED")


def test_fail_fast_stops_after_first_failed_iteration(capsys, tmp_path, registered):
    model = make_mlp(tmp_path / "mlp.onnx")
    registered(_Perturbed(trt.LayerType.MATRIX_MULTIPLY, "fc2", "test_wrong_fc2"))
    code, out, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST, "--iterations", "3")
    assert code == 1 and out.count("FAILED | 'probs'") == 3
    code, out, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST, "--iterations", "3", "--fail-fast")
    assert code == 1 and out.count("FAILED | 'probs'") == 1
    code, out, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST, "--atol", "probs:0.01")
    assert code == 0, out  # a per-output tolerance loosens only that output


def test_save_outputs_then_load_outputs_round_trips(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    inputs, golden = tmp_path / "inputs.json", tmp_path / "golden.npz"
    code, _, _ = run_cli(capsys, "run", model, "--onnxrt", "--iterations", "2", "--input-shapes", "x:[3,32]",
                         "--save-inputs", inputs, "--save-outputs", golden)
    assert code == 0
    feeds, saved = load_tensors(inputs), load_tensors(golden)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    for feed, outputs in zip(feeds, saved):
        np.testing.assert_array_equal(outputs["probs"], session.run(["probs"], feed)[0])
    code, out, _ = run_cli(capsys, "run", model, "--engine", *FAST, "--iterations", "2", "--input-shapes",
                           "x:[3,32]", "--load-outputs", golden)
    assert code == 0 and "against golden (golden.npz)" in out and "onnxrt:" not in out
    tampered = tmp_path / "tampered.npz"
    save_tensors(tampered, [{"probs": o["probs"] * 1.1} for o in saved])
    code, out, _ = run_cli(capsys, "run", model, "--engine", *FAST, "--load-inputs", inputs, "--load-outputs", tampered)
    assert code == 1 and "FAILED | 'probs'" in out


def test_save_tactics_then_load_tactics_is_bit_identical(capsys, tmp_path, registered):
    """An alternative (float64-accumulating) GEMM differs in the last bits: the replay must bring it back."""

    class Float64Gemm(trt.Tactic):
        name, layer_type, heuristic_rank = "test_float64_gemm", trt.LayerType.MATRIX_MULTIPLY, -1

        def supports(self, ctx):
            return ctx.layer.name == "fc1"

        def run(self, state, inputs, outputs, workspace, xp):
            outputs[0][...] = (inputs[0].astype(np.float64) @ inputs[1].astype(np.float64)).astype(np.float32)

    model = make_mlp(tmp_path / "mlp.onnx", hidden=256, features=512)
    alternative = registered(Float64Gemm())
    tactics, first, replayed, default = (tmp_path / n for n in ("t.json", "a.npz", "b.npz", "c.npz"))
    common = ["run", model, "--engine", *FAST, "--input-shapes", "x:[16,512]", "--engine-outputs", "h1"]
    assert run_cli(capsys, *common, "--save-tactics", tactics, "--save-outputs", first)[0] == 0
    alternative.heuristic_rank = 10_000  # a fresh build no longer picks it by itself
    assert run_cli(capsys, *common, "--load-tactics", tactics, "--save-outputs", replayed)[0] == 0
    assert run_cli(capsys, *common, "--save-outputs", default)[0] == 0
    a, b, c = (load_tensors(p)[0] for p in (first, replayed, default))
    for name in ("h1", "probs"):
        assert a[name].tobytes() == b[name].tobytes()
    assert a["h1"].tobytes() != c["h1"].tobytes()  # the replay mattered


def test_save_engine_then_load_engine_and_plan_as_model(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    plan, outputs = tmp_path / "mlp.plan", tmp_path / "out.npz"
    assert run_cli(capsys, "run", model, "--engine", *FAST, "--save-engine", plan, "--save-outputs", outputs)[0] == 0
    code, out, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", "--load-engine", plan)
    assert code == 0 and "RESULT: PASSED" in out
    code, out, _ = run_cli(capsys, "run", plan, "--engine", "--load-outputs", outputs, "--atol", "0", "--rtol", "0")
    assert code == 0, out


def test_validate_flags_nan_and_inf(capsys, tmp_path):
    graph = onnx.helper.make_graph([onnx.helper.make_node("Log", ["x"], ["y"], name="log")], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4])])
    model = tmp_path / "log.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), model)
    args = ["run", model, "--engine", "--onnxrt", *FAST, "--val-range", "x:[-2,-1]"]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0  # NaN on both sides agrees
    code, out, _ = run_cli(capsys, *args, "--validate")
    assert code == 1 and "VALIDATION FAILED | engine: 'y' (iteration 0) has 4 NaN and 0 Inf value(s)" in out


def test_data_loader_script_and_verbose_histogram(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    script = tmp_path / "feeds.py"
    script.write_text("import numpy as np\n\ndef load():\n    for i in range(2):\n"
                      "        yield {'x': np.full((2, 32), i, np.float32)}\n")
    saved = tmp_path / "inputs.npz"
    code, out, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST, "--data-loader-script",
                           f"{script}:load", "--save-inputs", saved, "-v")
    assert code == 0 and "abs diff histogram" in out
    assert [float(f["x"][0, 0]) for f in load_tensors(saved)] == [0.0, 1.0]


def test_quiet_prints_only_the_result(capsys, tmp_path):
    code, out, err = run_cli(capsys, "run", make_mlp(tmp_path / "m.onnx"), "--engine", "--onnxrt", *FAST, "-q")
    assert code == 0 and out.splitlines() == [line for line in out.splitlines() if line.startswith("RESULT:")]
    assert len(out.splitlines()) == 1 and err == ""


@pytest.mark.parametrize("args, message", [
    (["--check-error-stat", "p99"], "Invalid value for '--check-error-stat'"),
    (["--precision-constraints", "sometimes"], "Invalid value for '--precision-constraints'"),
    (["--device", "tpu"], "Invalid value for '--device'"),
    (["--input-shapes", "x:[1,a]"], "--input-shapes 'x:[1,a]': dimensions of 'x' must be integers"),
    (["--input-shapes", "x1,32"], "--input-shapes 'x1,32': expected NAME:[d0,d1,...]"),
    (["--input-shapes", "nope:[1,32]"], "'nope' is not an input of the model"),
    (["--onnx-outputs", "nope"], "tensor 'nope' does not exist in the ONNX model"),
    (["--engine-outputs", "h1x"], "tensor 'h1x' does not exist in the engine network (did you mean: h1"),
    (["--atol", "nope:1e-3"], "a per-output tolerance names 'nope', which is not a compared tensor"),
    (["--rtol", "probs:abc"], "--rtol 'probs:abc': 'abc' is not a number"),
    (["--val-range", "x:[1]"], "--val-range 'x:[1]': expected NAME:[lo,hi]"),
    (["--workspace", "lots"], "--workspace 'lots': expected a size"),
    (["--layer-precisions", "fc1"], "--layer-precisions 'fc1': expected NAME:VALUE"),
    (["--layer-precisions", "fc1:int8"], "layer 'fc1' (MATRIX_MULTIPLY): precision INT8 is required "
                                         "(OBEY_PRECISION_CONSTRAINTS) but it cannot run in INT8: INT8 is not enabled"),
    (["--save-outputs", "/nonexistent-dir/out.npz"], "directory '/nonexistent-dir' does not exist"),
    (["--report", "/nonexistent-dir/r.html"], "directory '/nonexistent-dir' does not exist"),
    (["--load-tactics", "/nonexistent-dir/t.json"], "no such file"),
    (["--bogus-flag"], "No such option: --bogus-flag"),
    (["extra-positional"], "unexpected extra argument(s): extra-positional"),
])
def test_bad_input_is_one_line_and_exit_code_2(capsys, tmp_path, args, message):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, out, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("polyx: error: "), err
    assert message in err and "Traceback" not in err


def test_mismatched_saved_data_is_a_usage_error(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    golden, inputs = tmp_path / "golden.npz", tmp_path / "inputs.npz"
    assert run_cli(capsys, "run", model, "--onnxrt", "--input-shapes", "x:[2,32]", "--save-outputs", golden)[0] == 0
    save_tensors(inputs, [{"y": np.zeros((2, 32), np.float32)}])
    wrong_dtype = tmp_path / "wrong_dtype.npz"
    save_tensors(wrong_dtype, [{"x": np.zeros((2, 32), np.float64)}])
    other = tmp_path / "other.npz"
    save_tensors(other, [{"unrelated": np.zeros(3)}])
    cases = [(["--input-shapes", "x:[4,32]", "--load-outputs", golden], "has shape [2, 10], engine produced [4, 10]"),
             (["--iterations", "2", "--load-outputs", golden], "holds 1 iteration(s) of outputs, this run has 2"),
             (["--load-outputs", other], "no tensor to compare"),
             (["--load-inputs", inputs], "'y' is not an input of the model"),
             (["--load-inputs", wrong_dtype], "input 'x' has dtype float64, the model expects float32"),
             (["--load-inputs", tmp_path / "missing.npz"], "missing.npz: no such file")]
    for args, message in cases:
        code, _, err = run_cli(capsys, "run", model, "--engine", *FAST, *args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, (args, err)


@pytest.mark.parametrize("args, message", [
    ([], "nothing to run: pass --engine and/or --onnxrt"),
    (["--onnxrt", "--iterations", "0"], "Invalid value for '--iterations'"),
])
def test_usage_errors_without_runners(capsys, tmp_path, args, message):
    code, _, err = run_cli(capsys, "run", make_mlp(tmp_path / "mlp.onnx"), *args)
    assert code == 2 and message in err
    code, _, err = run_cli(capsys, "run", tmp_path / "missing.onnx", "--onnxrt")
    assert code == 2 and "missing.onnx: no such file" in err
