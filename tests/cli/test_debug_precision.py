"""`polyx debug precision`: a MatMul whose outputs overflow FP16 (and the Softmax reading them) is found, and the
suggested layer precisions make `polyx run --fp16` pass."""
from __future__ import annotations

import json
import re
import shlex

import pytest
from cli_test_models import make_mlp, run_cli
from debug_test_models import make_overflow_model

import engine as trt

TOLERANCE = ("--atol", "1e-2", "--rtol", "1e-2")
LEVEL0 = ("--builder-optimization-level", "0")
# Independently of the debugger: fc_big's outputs (~1e5) overflow FP16 (max 65504); softmax reads them, so it
# overflows too unless it also runs in FP32. Every other layer's FP16 error stays far below 1e-2.
NEEDED = {"fc_big", "softmax"}


@pytest.fixture
def overflow_model(tmp_path):
    return make_overflow_model(tmp_path / "overflow.onnx")


def test_fp16_overflow_fails_and_the_found_layers_fix_it(capsys, tmp_path, overflow_model):
    code, _, _ = run_cli(capsys, "run", overflow_model, "--engine", "--onnxrt", "--fp16", *TOLERANCE, *LEVEL0)
    assert code == 1
    save = tmp_path / "fp32.json"
    code, out, err = run_cli(capsys, "debug", "precision", overflow_model, "--fp16", *TOLERANCE, *LEVEL0,
                             "--save", save)
    assert code == 0, out + err
    assert json.loads(save.read_text()) == {name: "fp32" for name in NEEDED}
    assert re.search(r"build 3 of <= \d+", err)
    flags = shlex.split(re.search(r"^Suggested build flags: (.*)$", out, re.M)[1])
    code, out, _ = run_cli(capsys, "run", overflow_model, "--engine", "--onnxrt", "--fp16", *TOLERANCE, *LEVEL0,
                           "--layer-precisions-file", save)
    assert code == 0, out
    code, out, _ = run_cli(capsys, "run", overflow_model, "--engine", "--onnxrt", "--fp16", *TOLERANCE, *LEVEL0,
                           *flags)
    assert code == 0, out


@pytest.mark.parametrize("mode, direction", [("bisect", "reverse"), ("linear", "forward"), ("linear", "reverse")])
def test_every_mode_and_direction_finds_the_same_layers(capsys, tmp_path, overflow_model, mode, direction):
    save = tmp_path / "fp32.json"
    code, out, _ = run_cli(capsys, "debug", "precision", overflow_model, "--fp16", *TOLERANCE, *LEVEL0, "-q",
                           "--mode", mode, "--direction", direction, "--save", save)
    assert code == 0, out
    assert set(json.loads(save.read_text())) == NEEDED
    builds = int(re.search(r"^Builds: (\d+)", out, re.M)[1])
    assert builds <= (2 + 8 if mode == "linear" else 2 + 2 * (3 + 1))  # 8 float layers


def test_a_passing_fp16_engine_needs_nothing(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, out, _ = run_cli(capsys, "debug", "precision", model, "--fp16", *TOLERANCE, *LEVEL0, "-q")
    assert code == 0
    assert "no layer needs FP32" in out and "Builds: 1" in out


def test_a_tolerance_fp32_cannot_meet_exits_1(capsys, overflow_model):
    code, out, _ = run_cli(capsys, "debug", "precision", overflow_model, "--fp16", "--atol", "0", "--rtol", "0",
                           *LEVEL0, "-q")
    assert code == 1
    assert "even with every layer in FP32" in out


def test_ctrl_c_saves_the_smallest_passing_fp32_set_so_far(capsys, tmp_path, overflow_model, monkeypatch):
    import polyx.debug.checks as checks_module  # every candidate build goes through build_candidate

    real_build, builds = checks_module.build_engine, []

    def interrupt_fourth(*args, **kwargs):
        builds.append(1)
        if len(builds) == 4:
            raise KeyboardInterrupt
        return real_build(*args, **kwargs)

    monkeypatch.setattr(checks_module, "build_engine", interrupt_fourth)
    save = tmp_path / "fp32.json"
    code, out, err = run_cli(capsys, "debug", "precision", overflow_model, "--fp16", *TOLERANCE, *LEVEL0,
                             "--save", save)
    assert code == 130 and "Interrupted" in err
    saved = json.loads(save.read_text())
    assert NEEDED <= set(saved) and len(saved) < 8  # build 3 passed with half of the layers in FP16
    monkeypatch.undo()
    code, out, _ = run_cli(capsys, "run", overflow_model, "--engine", "--onnxrt", "--fp16", *TOLERANCE, *LEVEL0,
                           "--layer-precisions-file", save)
    assert code == 0, out


def test_usage_errors(capsys, tmp_path, overflow_model):
    code, _, err = run_cli(capsys, "debug", "precision", overflow_model, *LEVEL0)
    assert code == 2 and err.strip() == ("polyx: error: debug precision searches an FP16 or INT8 engine: pass --fp16 "
                                         "or --int8")
    code, _, err = run_cli(capsys, "debug", "precision", overflow_model, "--fp16", "--save",
                           tmp_path / "missing" / "x.json")
    assert code == 2 and "does not exist" in err


def test_builds_of_one_search_share_one_timing_cache(capsys, tmp_path, overflow_model, monkeypatch):
    """Only the all-FP16 and the all-FP32 builds time tactics (each layer in each precision once); every later
    build finds its timings in the shared cache. --timing-cache FILE is filled from it."""
    import polyx.debug.checks as checks_module

    real_build, caches, new_misses = checks_module.build_engine, [], []

    def counting_build(model, options, logger):
        cache = options.shared_timing_cache
        before = cache.misses
        built = real_build(model, options, logger)
        caches.append(cache)
        new_misses.append(cache.misses - before)
        return built

    monkeypatch.setattr(checks_module, "build_engine", counting_build)
    cache_file = tmp_path / "tc.cache"
    # CPU: its reformat layers have one tactic (nothing to time), so only the first two builds time anything
    code, out, err = run_cli(capsys, "debug", "precision", overflow_model, "--fp16", *TOLERANCE, "-q",
                             "--timing-cache", cache_file, "--device", "cpu")
    assert code == 0, out + err
    assert len(caches) >= 4 and all(cache is caches[0] for cache in caches)
    assert new_misses[0] > 0 and new_misses[1] > 0 and new_misses[2:] == [0] * (len(new_misses) - 2)
    assert len(trt.TimingCache.deserialize(cache_file.read_bytes())) == len(caches[0])


def test_a_check_that_cannot_tell_builds_apart_exits_2(capsys, overflow_model):
    code, _, err = run_cli(capsys, "debug", "precision", overflow_model, "--fp16", *LEVEL0, "-q",
                           "--check", "test -s {engine} && echo 'bad engine' >&2 && exit 1")
    assert code == 2
    assert "fails the same way on the original and on the engine with every layer in FP32 (exit 1: bad engine)" in err
    code, _, err = run_cli(capsys, "debug", "precision", overflow_model, "--fp16", *LEVEL0, "-q",
                           "--check", "test -s {engine}")
    assert code == 2 and "the check passes on the FP16 engine" in err


def test_progress_bar_total_is_the_stated_bound(capsys, overflow_model, monkeypatch):
    """On a terminal the lines go above a rich bar whose total is the bound of the last line (never below the
    builds done); without a bound it shows '?'."""
    import io

    from rich.console import Console

    import polyx.cli.debug_cmd as debug_cmd

    screen = io.StringIO()
    bars = []

    class Recorded(debug_cmd.DebugProgress):
        def __init__(self, command, quiet):
            super().__init__(command, quiet, console=Console(file=screen, force_terminal=True, width=200))
            bars.append(self)

        def __call__(self, line, done=None, total=None):
            super().__call__(line, done, total)
            task = self.bar.tasks[0]
            bars.append((task.completed, task.total, line))

    monkeypatch.setattr(debug_cmd, "DebugProgress", Recorded)
    code, out, err = run_cli(capsys, "debug", "precision", overflow_model, "--fp16", *TOLERANCE, *LEVEL0)
    assert code == 0, out + err
    steps = bars[1:]
    assert steps[0][:2] == (1, None)  # build 1 (plain FP16) comes before any bound
    bounded = [(done, total, line) for done, total, line in steps if total is not None]
    assert bounded and all(done <= total and f"build {done} of <= {total} " in line for done, total, line in bounded)
    assert all(later[1] <= earlier[1] for earlier, later in zip(bounded, bounded[1:]))
    assert "[debug precision] build 3 of <= " in screen.getvalue()


def test_resume_continues_an_interrupted_search(capsys, tmp_path, overflow_model, monkeypatch):
    """Ctrl-C at build 4; rerun with the same --resume journal: the 3 judged builds are not built again and the
    result is that of an uninterrupted search. Another flag with the same journal is refused."""
    import polyx.debug.checks as checks_module

    real_build, built, interrupt_at = checks_module.build_engine, [], [4]

    def counting_build(*args, **kwargs):
        built.append(1)
        if len(built) == interrupt_at[0]:
            raise KeyboardInterrupt
        return real_build(*args, **kwargs)

    monkeypatch.setattr(checks_module, "build_engine", counting_build)
    journal = tmp_path / "precision.jsonl"
    flags = ("debug", "precision", overflow_model, "--fp16", *TOLERANCE, *LEVEL0, "-q", "--resume", journal)
    code, _, _ = run_cli(capsys, *flags)
    assert code == 130 and len(journal.read_text().splitlines()) == 1 + 3  # a header and 3 verdicts
    built.clear()
    interrupt_at[0] = 0  # no interruption this time
    code, out, err = run_cli(capsys, *flags, "--save", tmp_path / "fp32.json")
    assert code == 0, out + err
    total = int(re.search(r"^Builds: (\d+)", out, re.M)[1])
    assert len(built) == total - 3  # only the builds the first run had not judged
    assert json.loads((tmp_path / "fp32.json").read_text()) == {name: "fp32" for name in NEEDED}
    code, _, err = run_cli(capsys, *flags, "--mode", "linear")
    assert code == 2 and "written by another debug run (differs in mode)" in err


def make_int8_outlier_model(path):
    """x → fc1 (one output channel offset by 500) → fc2 → fc3 → y. Calibrated to its range, fc2's input scale is
    about 4, so every other channel quantizes to 0 or ±1: fc2 in INT8 ruins the output; fc1 (a normal input) and
    fc3 (fc2's normal output) are fine in INT8."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(8)
    bias = (rng.standard_normal(32) * 0.1).astype(np.float32)
    bias[0] = 500.0
    w2 = (rng.standard_normal((32, 16)) * 0.3).astype(np.float32)
    w2[0] = 0  # fc2 ignores the outlier channel: it only sets fc2's input range, and fc2's output stays normal
    inits = [numpy_helper.from_array((rng.standard_normal((16, 32)) * 0.3).astype(np.float32), "w1"),
             numpy_helper.from_array(bias, "b1"),
             numpy_helper.from_array(w2, "w2"),
             numpy_helper.from_array((rng.standard_normal((16, 8)) * 0.3).astype(np.float32), "w3")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"),
             helper.make_node("Add", ["h1", "b1"], ["h1b"], name="bias1"),
             helper.make_node("MatMul", ["h1b", "w2"], ["h2"], name="fc2"),
             helper.make_node("MatMul", ["h2", "w3"], ["y"], name="fc3")]
    graph = helper.make_graph(nodes, "outlier", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_debug_precision_int8_names_the_layer_with_a_huge_range(capsys, tmp_path):
    model = make_int8_outlier_model(tmp_path / "outlier.onnx")
    int8 = ("--int8", "--calib-base-cls", "MinMaxCalibrator", "--atol", "0.5", "--rtol", "0.02", *LEVEL0)
    code, _, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", *int8)
    assert code == 1  # all of it in INT8 fails
    save = tmp_path / "fp32.json"
    code, out, err = run_cli(capsys, "debug", "precision", model, *int8, "--save", save, "-q")
    assert code == 0, out + err
    assert "1 of 3 float layers must run in FP32:\n  fc2" in out
    assert json.loads(save.read_text()) == {"fc2": "fp32"}
    code, out, _ = run_cli(capsys, "run", model, "--engine", "--onnxrt", *int8, "--layer-precisions-file", save,
                           "--precision-constraints", "obey")
    assert code == 0, out
