"""`polyx debug reduce`: a model in which one node fails shrinks to at most 3 nodes containing that node, as a
valid ONNX model that still fails."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from cli_test_models import make_mlp, run_cli, shared_model
from debug_test_models import WrongTactic, make_chain_model, registered, reverse_last_axis

import engine as trt

REPO = Path(__file__).resolve().parents[2]


def _has_node_check(tmp_path, node_name: str) -> str:
    """A user check: the candidate model is bad (exit 1) when it contains the node."""
    script = tmp_path / "has_node.py"
    script.write_text("import sys\nimport onnx\n"
                      "names = {node.name for node in onnx.load(sys.argv[1]).graph.node}\n"
                      f"sys.exit(1 if {node_name!r} in names else 0)\n")
    return f"{sys.executable} {script} {{model}}"


def _runs_in_onnxruntime(model: onnx.ModelProto) -> None:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    for value in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in value.shape]
        feeds[value.name] = np.zeros(shape, np.int64 if "int64" in value.type else np.float32)
    session.run(None, feeds)


def test_check_command_reduces_bert_to_the_failing_node(capsys, tmp_path):
    model = shared_model("bert_tiny")
    bad = "/m/encoder/layer.1/attention/self/Softmax"
    output = tmp_path / "min.onnx"
    code, out, err = run_cli(capsys, "debug", "reduce", model, "--check", _has_node_check(tmp_path, bad),
                             "-o", output)
    assert code == 0, out + err
    reduced = onnx.load(output)
    onnx.checker.check_model(reduced)
    names = [node.name for node in reduced.graph.node]
    assert bad in names and len(names) <= 3
    assert f"Reduced {len(onnx.load(model).graph.node)} -> {len(names)} node(s)" in out
    assert "check 1: the whole model" in err
    _runs_in_onnxruntime(reduced)


def test_builtin_engine_vs_onnxrt_check_keeps_the_node_with_a_wrong_tactic(capsys, tmp_path):
    model = make_chain_model(tmp_path / "chain.onnx")
    output = tmp_path / "min.onnx"
    with registered(WrongTactic(trt.LayerType.SOFTMAX, "test:softmax:reversed", reverse_last_axis)):
        code, _, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", "--builder-optimization-level", "0")
        assert code == 1
        code, out, err = run_cli(capsys, "debug", "reduce", model, "--engine", "--onnxrt", "-o", output,
                                 "--builder-optimization-level", "0")
        assert code == 0, out + err
        reduced = onnx.load(output)
        onnx.checker.check_model(reduced)
        names = [node.name for node in reduced.graph.node]
        assert "softmax" in names and len(names) <= 3
        code, _, _ = run_cli(capsys, "run", output, "--engine", "--onnxrt", "--builder-optimization-level", "0")
        assert code == 1  # the reduced model still shows the failure
    code, _, _ = run_cli(capsys, "run", output, "--engine", "--onnxrt", "--builder-optimization-level", "0")
    assert code == 0  # and only because of the wrong tactic


def test_ctrl_c_leaves_the_smallest_failing_model_so_far(capsys, tmp_path, monkeypatch):
    from polyx.debug.checks import CommandCheck

    model = shared_model("mobilenet_v2")
    bad = "/features/features.7/conv/conv.1/conv.1.0/Conv"
    real_judge, calls = CommandCheck.judge, []

    def interrupt_sixth(self, artifacts):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real_judge(self, artifacts)

    monkeypatch.setattr(CommandCheck, "judge", interrupt_sixth)
    output = tmp_path / "min.onnx"
    code, out, err = run_cli(capsys, "debug", "reduce", model, "--check", _has_node_check(tmp_path, bad),
                             "-o", output, "-q")
    assert code == 130 and "Interrupted" in err
    reduced = onnx.load(output)
    onnx.checker.check_model(reduced)
    names = [node.name for node in reduced.graph.node]
    assert bad in names and len(names) < len(onnx.load(model).graph.node)


def test_a_passing_model_and_usage_errors(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    output = tmp_path / "min.onnx"
    code, _, err = run_cli(capsys, "debug", "reduce", model, "--check", "true {model}", "-o", output, "-q")
    assert code == 2 and "the check passes on the original model" in err
    assert not output.exists()
    code, _, err = run_cli(capsys, "debug", "reduce", model, "--engine", "--onnxrt", "-o", output, "-q")
    assert code == 2 and "passes the check, so there is nothing to reduce" in err
    code, _, err = run_cli(capsys, "debug", "reduce", model, "-o", output)
    assert code == 2 and "needs a check" in err
    code, _, err = run_cli(capsys, "debug", "reduce", model, "--check", "false {model}", "--engine", "--onnxrt",
                           "-o", output)
    assert code == 2 and "not both" in err
    code, _, err = run_cli(capsys, "debug", "reduce", model, "--check", "false {model}", "-o", model)
    assert code == 2 and err.startswith("polyx: error:")
    code, _, err = run_cli(capsys, "debug", "reduce", model, "--check", "false {model}", "-o",
                           tmp_path / "no" / "m.onnx")
    assert code == 2 and "does not exist" in err


def test_a_check_without_the_candidate_is_refused_before_anything_runs(capsys, tmp_path):
    """Polygraphy's file name instead of {model}: refused at once (no check runs, nothing is written)."""
    model = make_chain_model(tmp_path / "chain.onnx")
    marker = tmp_path / "ran"
    code, out, err = run_cli(capsys, "debug", "reduce", model, "--check",
                             f"touch {marker}; polyx run polygraphy_debug.onnx --engine --onnxrt",
                             "-o", tmp_path / "m.onnx")
    assert code == 2 and "names no candidate file: put {model}" in err
    assert not marker.exists() and not (tmp_path / "m.onnx").exists() and out == ""


@pytest.mark.parametrize("check, message", [
    ("test -f {model} && exit 2", "the check cannot judge the original model: check exited 2 (a usage error"),
    ("test -f {model} && echo broken >&2 && exit 1", "fails the same way on the original and on a model that only "
                                                     "copies its inputs to its outputs (exit 1: broken)"),
])
def test_checks_that_cannot_tell_candidates_apart_stop_with_exit_2(capsys, tmp_path, check, message):
    model = make_chain_model(tmp_path / "chain.onnx")
    code, _, err = run_cli(capsys, "debug", "reduce", model, "--check", check, "-o", tmp_path / "m.onnx")
    assert code == 2 and message in err, err
    assert not (tmp_path / "m.onnx").exists()


def test_linear_mode_min_good_and_fixed_outputs(capsys, tmp_path):
    model = make_chain_model(tmp_path / "chain.onnx")
    check = "! grep -q softmax {model}"  # only the node is named "softmax" (its op is "Softmax"): fast, no Python
    output, good = tmp_path / "min.onnx", tmp_path / "good.onnx"
    code, out, err = run_cli(capsys, "debug", "reduce", model, "--check", check, "-o", output, "--mode", "linear",
                             "--min-good", good)
    assert code == 0, out + err
    assert [node.name for node in onnx.load(output).graph.node] == ["softmax"]
    assert "outputs after node" not in err and "inputs from node" not in err  # no bisection in linear mode
    passing = [node.name for node in onnx.load(good).graph.node]
    assert "softmax" not in passing and passing  # a model the check passes
    assert f"Saved a passing model of {len(passing)} node(s) to {good}" in out

    code, out, err = run_cli(capsys, "debug", "reduce", model, "--check", check, "-o", output, "-q",
                             "--no-reduce-outputs")
    assert code == 0, out + err
    reduced = onnx.load(output)
    assert [o.name for o in reduced.graph.output] == ["y"]  # the original output stays
    assert reduced.graph.node[0].name == "softmax"
    code, _, err = run_cli(capsys, "debug", "reduce", model, "--check", check, "-o", output,
                           "--no-reduce-outputs", "--no-reduce-inputs")
    assert code == 2 and "nothing to reduce" in err


def test_cut_points_get_the_original_models_values_on_the_real_inputs(capsys, tmp_path):
    """Every candidate's inputs ({inputs}) hold what the original model computes there from --load-inputs,
    checked against onnx's reference evaluator; the reduced model fails for the original's reason."""
    from onnx.reference import ReferenceEvaluator

    from polyx.data.files import save_tensors

    model = make_chain_model(tmp_path / "chain.onnx")
    x = np.random.default_rng(7).standard_normal((2, 16)).astype(np.float32)
    save_tensors(tmp_path / "x.npz", [{"x": x}])
    expected = ReferenceEvaluator(onnx.load(model)).run(None, {"x": x}, intermediate=True)
    np.savez(tmp_path / "expected.npz", **expected)
    seen = tmp_path / "seen.txt"
    script = tmp_path / "check.py"
    script.write_text(  # numpy only (no onnx import): each check stays fast
        "import sys\nimport numpy as np\nfrom polyx.data.files import load_tensors\n"
        f"expected = np.load({str(tmp_path / 'expected.npz')!r})\n"
        "fed = load_tensors(sys.argv[2])[0]\n"
        "for name, value in fed.items():\n"
        "    np.testing.assert_allclose(value, expected[name], rtol=1e-5, atol=1e-6)\n"
        f"    open({str(seen)!r}, 'a').write(name + '\\n')\n"
        "sys.exit(1 if b'softmax' in open(sys.argv[1], 'rb').read() else 0)\n")
    env_path = f"PYTHONPATH={REPO}"
    code, out, err = run_cli(capsys, "debug", "reduce", model, "--check",
                             f"{env_path} {sys.executable} {script} {{model}} {{inputs}}", "--load-inputs",
                             tmp_path / "x.npz", "-o", tmp_path / "min.onnx")
    assert code == 0, out + err
    assert [node.name for node in onnx.load(tmp_path / "min.onnx").graph.node] == ["softmax"]
    assert "a1" in set(seen.read_text().split())  # softmax's input, a cut point, got relu1's real output


def test_resume_takes_recorded_verdicts(capsys, tmp_path):
    model = make_chain_model(tmp_path / "chain.onnx")
    journal, output = tmp_path / "reduce.jsonl", tmp_path / "min.onnx"
    flags = ("debug", "reduce", model, "--check", "! grep -q softmax {model}", "-o", output, "--resume", journal)
    code, first, _ = run_cli(capsys, *flags, "-q")
    assert code == 0
    recorded = len(journal.read_text().splitlines()) - 1
    code, again, err = run_cli(capsys, *flags)
    assert code == 0 and again == first
    assert err.count("(verdict from the --resume journal)") == recorded > 0
    assert len(journal.read_text().splitlines()) - 1 == recorded  # nothing judged twice
