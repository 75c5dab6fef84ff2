"""Several optimization profiles from the command line: repeating the --min/--opt/--max-shapes group starts a new
profile (Polygraphy's semantics), `convert` builds them into one plan, `inspect model` shows them all, and
`--optimization-profile N` picks the one a run uses."""
import json

import numpy as np
import pytest
from cli_test_models import make_mlp, run_cli

import engine as trt
from polyx.cli.build_options import parse_profile_shapes, parse_profiles
from polyx.data.files import load_tensors

TWO_PROFILES = ["--min-shapes", "x:[1,32]", "--opt-shapes", "x:[2,32]", "--max-shapes", "x:[4,32]",
                "--min-shapes", "x:[8,32]", "--opt-shapes", "x:[12,32]", "--max-shapes", "x:[16,32]"]
FAST = ["--device", "cpu", "--builder-optimization-level", "0"]


def test_an_input_named_again_starts_the_next_profile():
    assert parse_profile_shapes(["a:[1] b:[2]", "a:[3]", "b:[4]", "a:[5]"], "--min-shapes") == [
        {"a": (1,), "b": (2,)}, {"a": (3,), "b": (4,)}, {"a": (5,)}]
    assert parse_profile_shapes(["a:[1]", "b:[2]"], "--min-shapes") == [{"a": (1,), "b": (2,)}]
    profiles = parse_profiles(["x:[1]", "x:[2]"], ["x:[1]", "x:[3]"], ["x:[1]"])
    assert [(p.min, p.opt, p.max) for p in profiles] == [({"x": (1,)}, {"x": (1,)}, {"x": (1,)}),
                                                        ({"x": (2,)}, {"x": (3,)}, {})]


def test_convert_builds_two_profiles_into_one_plan_and_inspect_shows_both(capsys, tmp_path):
    model, plan = make_mlp(tmp_path / "mlp.onnx"), tmp_path / "two.plan"
    code, _, err = run_cli(capsys, "convert", model, "-o", plan, *FAST, *TWO_PROFILES)
    assert code == 0, err
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan.read_bytes())
    assert engine.num_optimization_profiles == 2
    assert engine.get_tensor_profile_shape("x", 0) == ((1, 32), (2, 32), (4, 32))
    assert engine.get_tensor_profile_shape("x", 1) == ((8, 32), (12, 32), (16, 32))
    context = engine.create_execution_context()
    context.set_optimization_profile_async(1)
    assert context.execute({"x": np.ones((16, 32), np.float32)})["probs"].shape == (16, 10)

    code, out, err = run_cli(capsys, "inspect", "model", plan, "--format", "json")
    assert code == 0, err
    profiles = json.loads(out)["profiles"]
    assert [(p["index"], p["inputs"][0]["min"], p["inputs"][0]["max"]) for p in profiles] == [
        (0, [1, 32], [4, 32]), (1, [8, 32], [16, 32])]


def test_polygraphy_spelling_and_several_values_per_flag(capsys, tmp_path):
    plan = tmp_path / "two.plan"
    code, _, err = run_cli(capsys, "convert", make_mlp(tmp_path / "mlp.onnx"), "-o", plan, *FAST,
                           *[arg.replace("--", "--trt-") if arg.startswith("--") else arg for arg in TWO_PROFILES])
    assert code == 0, err
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan.read_bytes())
    assert engine.get_tensor_profile_shape("x", 1) == ((8, 32), (12, 32), (16, 32))


def test_run_uses_the_chosen_profile_for_the_engine_and_the_data(capsys, tmp_path):
    model, inputs = make_mlp(tmp_path / "mlp.onnx"), tmp_path / "in.npz"
    code, out, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST, *TWO_PROFILES,
                             "--optimization-profile", "1", "--save-inputs", inputs)
    assert code == 0, out + err
    assert "RESULT: PASSED" in out
    assert load_tensors(inputs)[0]["x"].shape == (12, 32)  # profile 1's opt shape


def test_run_of_a_saved_plan_takes_the_chosen_profiles_opt_shape(capsys, tmp_path):
    model, plan, inputs = make_mlp(tmp_path / "mlp.onnx"), tmp_path / "two.plan", tmp_path / "in.npz"
    assert run_cli(capsys, "convert", model, "-o", plan, *FAST, *TWO_PROFILES)[0] == 0
    code, out, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", "--load-engine", plan,
                             "--optimization-profile", "1", "--save-inputs", inputs)
    assert code == 0, out + err
    assert load_tensors(inputs)[0]["x"].shape == (12, 32)
    code, _, err = run_cli(capsys, "run", model, "--engine", "--load-engine", plan, "--optimization-profile", "2")
    assert code == 2 and "--optimization-profile 2: the plan has 2 profile(s)" in err


@pytest.mark.parametrize(("args", "message"), [
    (TWO_PROFILES + ["--optimization-profile", "2"], "--optimization-profile 2: the shape flags define 2 profile(s)"),
    (TWO_PROFILES[:-2], "profile 1: input 'x': a profile needs min, opt and max shapes; missing --max-shapes"),
    (TWO_PROFILES[:6] + ["--min-shapes", "x:[8,32]", "--opt-shapes", "x:[4,32]", "--max-shapes", "x:[16,32]"],
     "min <= opt <= max"),
])
def test_bad_profiles_are_refused(capsys, tmp_path, args, message):
    code, _, err = run_cli(capsys, "convert", make_mlp(tmp_path / "mlp.onnx"), "-o", tmp_path / "m.plan", *FAST,
                           *args)
    assert code == 2 and message in err, err
    assert not (tmp_path / "m.plan").exists()


def test_bench_times_the_chosen_profile_of_a_build_or_a_plan(capsys, tmp_path):
    model, plan = make_mlp(tmp_path / "mlp.onnx"), tmp_path / "two.plan"
    timing = ["--warmup", "0", "--duration", "0", "--iterations", "3", "--json"]
    code, out, err = run_cli(capsys, "bench", model, *FAST, *timing, *TWO_PROFILES, "--optimization-profile", "1")
    assert code == 0, err
    assert json.loads(out)["batch"] == 12  # profile 1's opt shape, run on profile 1
    assert run_cli(capsys, "convert", model, "-o", plan, *FAST, *TWO_PROFILES)[0] == 0
    code, out, err = run_cli(capsys, "bench", plan, *timing, "--optimization-profile", "1")
    assert code == 0, err
    assert json.loads(out)["batch"] == 12
    code, _, err = run_cli(capsys, "bench", plan, *timing, "--optimization-profile", "2")
    assert code == 2 and "--optimization-profile 2: the engine has 2 profile(s)" in err
