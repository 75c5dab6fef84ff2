"""Polygraphy's spellings work next to ours: --trt, --trt-outputs, --pool-limit, --save-engine on convert,
--save/--load-timing-cache, --providers, `inspect model --show a b c`, --verbosity, --log-file, and an unknown
Polygraphy flag names our equivalent."""
import json
import re
from pathlib import Path

import onnxruntime as ort
import pytest
from cli_test_models import make_mlp, run_cli

import engine as trt
from polyx.cli.build_options import build_options_from_cli
from polyx.errors import PolyxError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
FAST = ["--device", "cpu", "--builder-optimization-level", "0"]


def _plan_meta(capsys, plan):
    code, out, err = run_cli(capsys, "inspect", "model", plan, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_trt_is_engine_and_trt_outputs_marks_a_tensor(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, out, err = run_cli(capsys, "run", model, "--trt", "--onnxrt", *FAST)
    assert code == 0, err
    assert "RESULT: PASSED (1 tensor(s) compared over 1 iteration(s) against onnxrt)" in out
    code, out, err = run_cli(capsys, "run", model, "--trt", "--onnxrt", *FAST, "--trt-outputs", "h1", "a1",
                             "--onnx-outputs", "h1", "a1")
    assert code == 0, err
    assert "RESULT: PASSED (3 tensor(s) compared" in out


def test_pool_limit_is_the_workspace_limit(capsys, tmp_path):
    assert build_options_from_cli(pool_limit=["workspace:1G"]).workspace_bytes == 1 << 30
    assert build_options_from_cli(pool_limit=["WORKSPACE:512M"], workspace="512M").workspace_bytes == 512 << 20
    assert build_options_from_cli(pool_limit=["workspace:64K", "workspace:2M"]).workspace_bytes == 2 << 20
    with pytest.raises(PolyxError, match="disagree"):
        build_options_from_cli(pool_limit=["workspace:1G"], workspace="1M")
    with pytest.raises(PolyxError, match="no memory pool 'dla_managed_sram' \\(pools: workspace\\)"):
        build_options_from_cli(pool_limit=["dla_managed_sram:1M"])
    model = EXAMPLES / "cnn.onnx"  # its convolutions have tactics that need workspace
    plans = {}
    for limit, flag in (("0", "--pool-limit"), ("1G", "--memory-pool-limit")):
        plans[limit] = tmp_path / f"w{limit}.plan"
        code, _, err = run_cli(capsys, "convert", model, "--save-engine", plans[limit], "--device", "cpu",
                               "--input-shapes", "input:[2,3,32,32]", flag, f"workspace:{limit}")
        assert code == 0, err
    assert _plan_meta(capsys, plans["0"])["memory"]["workspace_bytes"] == 0
    assert _plan_meta(capsys, plans["1G"])["memory"]["workspace_bytes"] > 0


def test_save_and_load_timing_cache(capsys, tmp_path):
    model, cache = make_mlp(tmp_path / "mlp.onnx"), tmp_path / "timing.cache"
    args = ["convert", model, "-o", tmp_path / "m.plan", "--device", "cpu", "--builder-optimization-level", "1"]
    code, out, err = run_cli(capsys, *args, "--save-timing-cache", cache)
    assert code == 0 and cache.is_file(), err
    assert re.search(r"timing cache: 0 hits, [1-9]\d* misses", out)
    code, out, err = run_cli(capsys, *args, "--load-timing-cache", cache)
    assert code == 0, err
    assert re.search(r"timing cache: [1-9]\d* hits, 0 misses", out)
    code, _, err = run_cli(capsys, *args, "--load-timing-cache", tmp_path / "missing.cache")
    assert code == 2 and "missing.cache: no such file (--load-timing-cache)" in err


def test_onnxrt_providers(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, out, err = run_cli(capsys, "run", model, "--trt", "--onnxrt", "--providers", "cpu", *FAST)
    assert code == 0 and "RESULT: PASSED" in out, err
    code, _, err = run_cli(capsys, "run", model, "--onnxrt", "--providers", "warp_drive")
    assert code == 2 and "--providers 'warp_drive': not an onnxruntime execution provider" in err
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        code, _, err = run_cli(capsys, "run", model, "--onnxrt", "--providers", "cuda", "cpu")
        assert code == 2 and "has no CUDAExecutionProvider" in err


def test_inspect_model_show_takes_several_values(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, out, err = run_cli(capsys, "inspect", "model", model, "--show", "layers", "attrs", "weights",
                             "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert "weights" in report and report["nodes"][-1]["attributes"] == {"axis": -1}


def test_verbosity_sets_the_engine_log_level(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, _, err = run_cli(capsys, "convert", model, "-o", tmp_path / "m.plan", *FAST, "--verbosity", "INFO")
    assert code == 0 and "[polyx-engine] [I] build finished" in err
    code, _, err = run_cli(capsys, "convert", model, "-o", tmp_path / "m.plan", *FAST, "--verbosity=error")
    assert code == 0 and "[polyx-engine]" not in err
    code, _, err = run_cli(capsys, "convert", model, "-o", tmp_path / "m.plan", "--verbosity", "chatty")
    assert code == 2 and "--verbosity 'chatty': unknown level" in err


def test_log_file_gets_the_output_and_the_engine_log(capsys, tmp_path):
    model, log = make_mlp(tmp_path / "mlp.onnx"), tmp_path / "polyx.log"
    code, out, err = run_cli(capsys, "run", model, "--trt", "--onnxrt", *FAST, "--log-file", log,
                             "--verbosity", "verbose")
    assert code == 0, err
    text = log.read_text()
    assert "RESULT: PASSED" in text and "RESULT: PASSED" in out  # copied, not taken away
    assert "[polyx-engine] [V]" in text and "[polyx-engine] [V]" in err
    code, _, err = run_cli(capsys, "version", "--log-file", tmp_path / "no_dir" / "x.log")
    assert code == 2 and "does not exist" in err


def test_unknown_polygraphy_flag_names_our_equivalent(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, _, err = run_cli(capsys, "run", model, "--trt", "--save-results", tmp_path / "r.json")
    assert code == 2
    assert "No such option: --save-results" in err and "(Polygraphy's --save-results: use --save-outputs FILE)" in err
    code, _, err = run_cli(capsys, "convert", model, "-o", tmp_path / "m.plan", "--load-tactic-replay", "t.json")
    assert code == 2 and "(Polygraphy's --load-tactic-replay: use --load-tactics FILE)" in err
    code, _, err = run_cli(capsys, "run", model, "--no-such-flag-anywhere")
    assert code == 2 and "Polygraphy" not in err


def test_trt_spellings_build_the_same_engine(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, _, err = run_cli(capsys, "convert", model, "-o", tmp_path / "m.plan", *FAST,
                           "--trt-min-shapes", "x:[1,32]", "--trt-opt-shapes", "x:[2,32]",
                           "--trt-max-shapes", "x:[3,32]")
    assert code == 0, err
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine((tmp_path / "m.plan").read_bytes())
    assert engine.get_tensor_profile_shape("x", 0) == ((1, 32), (2, 32), (3, 32))
