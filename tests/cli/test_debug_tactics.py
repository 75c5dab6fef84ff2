"""`polyx debug tactics`: a deliberately wrong tactic, registered through the public tactic API, is named with
exactly the layers that picked it, within ceil(log2(layers)) + 4 builds, and the replay it writes passes."""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import onnx
import pytest
from cli_test_models import make_mlp, run_cli, shared_model
from debug_test_models import WrongTactic, drop_last_input_channel, drop_last_reduction_row, registered
from onnx import TensorProto, helper

import engine as trt
from polyx.build import BuildOptions, build_engine
from polyx.data.files import load_tensors, save_tensors
from polyx.tactic_replay import TacticRecorder, load_replay

LEVEL0 = ("--builder-optimization-level", "0")


def _picked(model, tactic_id: int) -> tuple[set[str], int]:
    """Independently of the debugger: the layers whose recorded tactic is `tactic_id`, and the layer count."""
    recorder = TacticRecorder()
    build_engine(model, BuildOptions(optimization_level=0, algorithm_selector=recorder))
    return {name for name, entry in recorder.replay.items() if entry["tactic_id"] == tactic_id}, len(recorder.replay)


def _reported_layers(out: str) -> set[str]:
    return {line.strip() for line in out.splitlines() if line.startswith("  ")}


def _builds(out: str) -> int:
    return int(re.search(r"^Builds: (\d+)", out, re.MULTILINE).group(1))


@pytest.mark.parametrize("model_name, layer_type, corrupt", [
    ("mobilenet_v2", trt.LayerType.CONVOLUTION, drop_last_input_channel),
    ("bert_tiny", trt.LayerType.MATRIX_MULTIPLY, drop_last_reduction_row),
])
def test_names_the_wrong_tactic_and_the_layers_that_picked_it(capsys, tmp_path, model_name, layer_type, corrupt):
    model = shared_model(model_name)
    good = tmp_path / "good.json"
    with registered(WrongTactic(layer_type, f"test:{model_name}:wrong", corrupt)) as wrong:
        picked, layers = _picked(model, wrong.id)
        assert len(picked) > 1
        code, _, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", *LEVEL0)
        assert code == 1  # the wrong tactic breaks the engine

        code, out, err = run_cli(capsys, "debug", "tactics", model, *LEVEL0, "--save-tactics", good)
        assert code == 0, out + err
        assert f"tactic id {wrong.id}" in out and wrong.name in out
        assert _reported_layers(out) == picked
        assert _builds(out) <= math.ceil(math.log2(layers)) + 4
        assert "build 1" in err  # progress lines

        assert all(entry["tactic_id"] != wrong.id for entry in load_replay(good).values())
        code, out, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", *LEVEL0, "--load-tactics", good)
        assert code == 0, out


def test_per_layer_finds_the_one_layer_where_a_shared_tactic_is_wrong(capsys, tmp_path):
    model = shared_model("mobilenet_v2")
    target = "/features/features.6/conv/conv.1/conv.1.0/Conv"

    class WrongOnOneLayer(WrongTactic):
        def prepare(self, ctx):
            return super().prepare(ctx), ctx.layer.name == target

        def run(self, state, inputs, outputs, workspace, xp):
            inner, wrong_here = state
            self.reference.run(inner, inputs, outputs, workspace, xp)
            if wrong_here:
                outputs[0] += 1.0

    depthwise = WrongOnOneLayer(trt.LayerType.CONVOLUTION, "test:conv:wrong_on_one_layer", lambda inputs: inputs,
                                lambda ctx: int(ctx.layer.params["num_groups"]) > 1)
    with registered(depthwise) as wrong:
        picked, layers = _picked(model, wrong.id)
        assert target in picked and len(picked) > 8
        code, out, err = run_cli(capsys, "debug", "tactics", model, *LEVEL0, "--per-layer",
                                 "--save-tactics", tmp_path / "good.json")
        assert code == 0, out + err
        assert _reported_layers(out) == {target}
        assert f"fails on 1 of the {len(picked)} layer(s)" in out
        assert _builds(out) <= math.ceil(math.log2(layers)) + 4
        replay = load_replay(tmp_path / "good.json")
        assert replay[target]["tactic_id"] != wrong.id
        assert sum(entry["tactic_id"] == wrong.id for entry in replay.values()) == len(picked) - 1
        code, out, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", *LEVEL0,
                               "--load-tactics", tmp_path / "good.json")
        assert code == 0, out


def test_check_command_reads_the_candidate_replay(capsys, tmp_path):
    """No wrong kernel: the user's check calls one (layer, tactic) pair bad by reading {tactics}. The layer is one
    with a choice of tactics on this device: on the CPU fc2; on the GPU fc2 has one tactic at level 0 (cuBLAS; its
    reference kernel cannot be captured in a CUDA graph), so fc1 (the same tactic is its fallback there)."""
    model = make_mlp(tmp_path / "mlp.onnx")
    recorder = TacticRecorder()
    build_engine(model, BuildOptions(optimization_level=0, algorithm_selector=recorder))
    layer = next(name for name in ("fc2", "fc1") if len(recorder.choices[name]) > 1)
    bad_id = recorder.replay[layer]["tactic_id"]
    script = tmp_path / "check.py"
    script.write_text("import json, os, sys\nlayers = json.load(open(os.environ['POLYX_DEBUG_TACTICS']))['layers']\n"
                      f"sys.exit(1 if layers[{layer!r}]['tactic_id'] == {bad_id} else 0)\n")
    code, out, err = run_cli(capsys, "debug", "tactics", model, *LEVEL0, "--per-layer",
                             "--check", f"{sys.executable} {script}  # reads $POLYX_DEBUG_TACTICS")
    assert code == 0, out + err
    assert f"tactic id {bad_id}" in out
    assert _reported_layers(out) == {layer}


def test_says_so_when_the_known_good_fallback_is_itself_the_suspect(capsys, tmp_path):
    """softmax_b has one tactic (the reference kernel), which is also softmax_a's known-good fallback; a check
    that blames it on softmax_b cannot be satisfied by any tactic choice, and the error says where it still ran."""
    model = tmp_path / "two_softmax.onnx"
    nodes = [helper.make_node("Softmax", ["x"], ["a"], name="softmax_a", axis=-1),
             helper.make_node("Softmax", ["a"], ["y"], name="softmax_b", axis=-1)]
    graph = helper.make_graph(nodes, "two_softmax", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    only_a = WrongTactic(trt.LayerType.SOFTMAX, "test:softmax:only_on_a", lambda inputs: inputs,
                         lambda ctx: ctx.layer.name == "softmax_a")
    with registered(only_a):
        recorder = TacticRecorder()
        build_engine(model, BuildOptions(optimization_level=0, algorithm_selector=recorder))
        if len(recorder.choices["softmax_b"]) > 1:
            pytest.skip("softmax_b has a choice of tactics on this device")
        blamed = recorder.replay["softmax_b"]["tactic"]
        script = tmp_path / "check.py"
        script.write_text("import json, sys\nlayers = json.load(open(sys.argv[1]))['layers']\n"
                          f"sys.exit(1 if layers['softmax_b']['tactic'] == {blamed!r} else 0)\n")
        code, out, err = run_cli(capsys, "debug", "tactics", model, *LEVEL0, "-q",
                                 "--check", f"{sys.executable} {script} {{tactics}}")
    assert code == 2, out + err
    assert "fails the same way on the original and on the engine with every suspect layer reverted" in err
    assert (f"still ran tactics the first build chose ({blamed} on softmax_b (its only tactic), softmax_a (as its "
            "fallback)): the known-good fallback is itself a suspect there") in err


def test_golden_outputs_are_a_reference_too(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    golden = tmp_path / "golden.npz"
    assert run_cli(capsys, "run", model, "--onnxrt", "--save-outputs", golden)[0] == 0
    with registered(WrongTactic(trt.LayerType.MATRIX_MULTIPLY, "test:mlp:wrong", drop_last_reduction_row)) as wrong:
        code, out, _ = run_cli(capsys, "debug", "tactics", model, *LEVEL0, "--load-outputs", golden, "-q")
    assert code == 0
    assert f"tactic id {wrong.id}" in out
    assert _reported_layers(out) == {"fc1", "fc2"}


def test_a_passing_engine_has_nothing_to_find(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, out, _ = run_cli(capsys, "debug", "tactics", model, *LEVEL0, "--save-tactics", tmp_path / "t.json")
    assert code == 0
    recorder = TacticRecorder()
    build_engine(model, BuildOptions(optimization_level=0, algorithm_selector=recorder))
    distinct = len({entry["tactic_id"] for entry in recorder.replay.values()})
    choices = sum(len(options) > 1 for options in recorder.choices.values())
    assert "The engine passes" in out
    assert (f"Builds: 1 ({len(recorder.replay)} layers used {distinct} distinct tactic(s); {choices} layer(s) had a "
            "choice of tactics)") in out
    assert "Saved the passing build's tactic replay" in out and "avoids" not in out
    assert load_replay(tmp_path / "t.json") == recorder.replay


def test_a_failure_no_tactic_explains_exits_1(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    wrong = tmp_path / "wrong.npz"
    assert run_cli(capsys, "run", model, "--onnxrt", "--save-outputs", wrong)[0] == 0
    save_tensors(wrong, [{name: value + 1 for name, value in it.items()} for it in load_tensors(wrong)])
    code, out, _ = run_cli(capsys, "debug", "tactics", model, *LEVEL0, "--load-outputs", wrong, "-q")
    assert code == 1
    assert "No bad tactic found" in out and "Builds: 2" in out


def test_a_check_that_fails_every_build_the_same_way_exits_2(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, out, err = run_cli(capsys, "debug", "tactics", model, *LEVEL0, "-q",
                             "--check", "test -s {engine} && echo 'model not found' >&2 && exit 3")
    assert code == 2
    assert "fails the same way on the original and on the engine with every suspect layer reverted (exit 3: " \
           "model not found)" in err


def test_ctrl_c_keeps_the_last_passing_replay(capsys, tmp_path, monkeypatch):
    import polyx.debug.checks as checks_module  # every candidate build goes through build_candidate

    model = shared_model("mobilenet_v2")
    real_build, builds = checks_module.build_engine, []

    def interrupt_third(*args, **kwargs):
        builds.append(1)
        if len(builds) == 3:
            raise KeyboardInterrupt
        return real_build(*args, **kwargs)

    monkeypatch.setattr(checks_module, "build_engine", interrupt_third)
    good = tmp_path / "good.json"
    with registered(WrongTactic(trt.LayerType.CONVOLUTION, "test:conv:wrong", drop_last_input_channel)) as wrong:
        code, out, err = run_cli(capsys, "debug", "tactics", model, *LEVEL0, "--save-tactics", good)
        assert code == 130
        assert "Interrupted" in err and "Builds: 2" in out
        assert all(entry["tactic_id"] != wrong.id for entry in load_replay(good).values())  # build 2 passed


def test_usage_errors_are_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "debug", "tactics", tmp_path / "missing.onnx")
    assert code == 2 and err.strip() == f"polyx: error: {tmp_path / 'missing.onnx'}: no such file"
    model = make_mlp(tmp_path / "mlp.onnx")
    code, _, err = run_cli(capsys, "debug", "tactics", model, "--check", "true {engine}", "--load-outputs", model)
    assert code == 2 and "--check judges candidates itself" in err
    code, _, err = run_cli(capsys, "debug", "tactics", model, "--check", "polyx run {model} --engine --onnxrt")
    assert code == 2 and "names no candidate file: put {engine} or {tactics}" in err  # before any build
    code, _, err = run_cli(capsys, "debug", "tactics", model, "--check", "true {engine}", "--fail-code", "2")
    assert code == 2 and "exit codes 2 (usage error) and 126/127" in err
    code, _, err = run_cli(capsys, "debug", "tactics", model, "--fail-regex", "x")
    assert code == 2 and "apply to a --check command" in err
    code, _, err = run_cli(capsys, "debug", "tactics", model, *LEVEL0, "--check", "true {engine}")
    assert code == 2 and "the check passes on the original engine (check exited 0)" in err
    code, _, err = run_cli(capsys, "debug", "tactics", model, "--check", "no_such_command_xyz {engine}")
    assert code == 2 and "--check: the shell could not find the command" in err

def test_check_command_gets_the_candidate_engine_plan(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    script = tmp_path / "check.py"
    repo = Path(__file__).resolve().parents[2]
    script.write_text(f"import sys\nsys.path.insert(0, {str(repo)!r})\nimport engine\n"
                      "engine.Runtime().deserialize_cuda_engine(open(sys.argv[1], 'rb').read())\n")
    code, out, err = run_cli(capsys, "debug", "tactics", model, *LEVEL0,
                             "--check", f"{sys.executable} {script} {{engine}}")
    assert code == 2, out + err  # the plan loads, so the check passes: it does not reproduce a failure
    assert "the check passes on the original engine (check exited 0)" in err
