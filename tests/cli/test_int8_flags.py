"""polyx INT8 flags: --int8 calibrates a float model on the run's data (Polygraphy's --calib-base-cls and
--calibration-cache), a written cache is reused without calibrating, convert calibrates on generated inputs, and
bad names fail as one line."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
from cli_test_models import make_mlp, run_cli

import engine as trt

FAST = ("--device", "cpu", "--builder-optimization-level", "0")


def _int8_layers(plan_path) -> list[str]:
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan_path.read_bytes())
    return [r["name"] for r in engine.layer_info() if r["precision"] == "INT8"]


def test_run_calibrates_on_its_data_and_then_reuses_the_cache(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    cache, plan = tmp_path / "mlp.cache", tmp_path / "mlp.plan"
    args = ("run", model, "--engine", "--onnxrt", *FAST, "--input-shapes", "x:[8,32]", "--int8",
            "--calib-base-cls", "MinMaxCalibrator", "--calibration-cache", cache, "--atol", "0.02", "--rtol", "0")
    code, out, err = run_cli(capsys, *args, "--save-engine", plan)
    assert code == 0, out + err
    assert cache.read_bytes().startswith(b"TRT-8601-MinMaxCalibration\n")
    assert _int8_layers(plan) == ["fc1", "fc2"]
    written, first_plan = cache.read_bytes(), plan.read_bytes()
    code, out, err = run_cli(capsys, *args, "--seed", "7", "--save-engine", plan)  # other data: would calibrate
    assert code == 0, out + err                                                   # to other ranges
    assert plan.read_bytes() == first_plan  # the cache's ranges, not the new data's
    assert cache.read_bytes() == written  # a cache that was read is never rewritten
    code, out, err = run_cli(capsys, *args[:-6], "--atol", "0.02", "--rtol", "0", "--seed", "7", "--save-engine",
                             plan, "--calib-base-cls", "MinMaxCalibrator")  # no cache: calibrates on seed 7
    assert code == 0, out + err
    assert plan.read_bytes() != first_plan


def test_convert_calibrates_on_generated_inputs(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    plan = tmp_path / "mlp.plan"
    code, out, err = run_cli(capsys, "convert", model, "-o", plan, *FAST, "--input-shapes", "x:[4,32]", "--int8")
    assert code == 0, out + err
    assert _int8_layers(plan) == ["fc1", "fc2"]
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan.read_bytes())
    # inputs like the ones it calibrated on: run's generated data, uniform in [0, 1) (docs/quantization.md)
    x = np.random.default_rng(4).uniform(0, 1, (4, 32)).astype(np.float32)
    (want,) = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = engine.create_execution_context().execute({"x": x})["probs"]
    assert np.abs(got - want).max() < 0.05 and np.array_equal(got.argmax(1), want.argmax(1))


def test_unknown_calibrator_is_one_line(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, _, err = run_cli(capsys, "convert", model, "-o", tmp_path / "p.plan", *FAST, "--int8", "--calib-base-cls",
                           "Percentile")
    assert code == 2 and err.startswith("polyx: error: --calib-base-cls 'Percentile': unknown calibrator")
    assert len(err.strip().splitlines()) == 1


def test_inspect_lists_int8_tensors_with_their_scales(capsys, tmp_path):
    import json

    model = make_mlp(tmp_path / "mlp.onnx")
    plan, cache = tmp_path / "mlp.plan", tmp_path / "mlp.cache"
    code, out, err = run_cli(capsys, "convert", model, "-o", plan, *FAST, "--input-shapes", "x:[4,32]", "--int8",
                             "--calibration-cache", cache)
    assert code == 0, out + err
    code, out, err = run_cli(capsys, "inspect", "model", plan, "--format", "json")
    assert code == 0, err
    tensors = {role: t for t in json.loads(out)["int8_tensors"] for role in t["roles"]}
    ranges = trt.calibrator.read_cache(cache.read_bytes())
    assert set(tensors) == {"input of fc1", "output of fc1", "input of fc2"}  # logits stay float: softmax reads them
    assert tensors["output of fc1"] is tensors["input of fc2"]  # fc1 writes the INT8 tensor fc2 reads
    assert tensors["input of fc1"]["scale"] == np.float32(ranges["x"] / 127)
