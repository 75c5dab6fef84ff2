"""Layer precisions with INT8 on the command line: `--layer-precisions NAME:int8` and the JSON file
`--layer-precisions-file` (the one `debug precision --int8 --save` writes) in `convert` and `run`; an INT8 request a
layer cannot meet fails as one line naming it (OBEY, the default with layer precisions) or warns (PREFER)."""
from __future__ import annotations

import json

from cli_test_models import make_mlp, run_cli

import engine as trt

FAST = ("--device", "cpu", "--builder-optimization-level", "0", "--input-shapes", "x:[4,32]")


def precisions(plan_path) -> dict[str, str]:
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan_path.read_bytes())
    return {r["name"]: r["precision"] for r in engine.layer_info() if not r["host"]}


def test_a_layer_precisions_file_with_fp32_and_int8_loads_in_convert_and_run(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    file = tmp_path / "precisions.json"
    file.write_text(json.dumps({"fc1": "int8", "fc2": "fp32"}))  # the form `debug precision --save` writes
    plan = tmp_path / "m.plan"
    code, out, err = run_cli(capsys, "convert", model, "-o", plan, *FAST, "--int8", "--layer-precisions-file", file)
    assert code == 0, out + err
    got = precisions(plan)
    assert got["fc1"] == "INT8" and got["fc2"] == "FLOAT"
    code, out, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", *FAST, "--int8", "--layer-precisions-file",
                             file, "--atol", "0.05", "--rtol", "0", "--save-engine", plan)
    assert code == 0, out + err
    assert precisions(plan)["fc2"] == "FLOAT"


def test_int8_and_fp32_from_the_flag(capsys, tmp_path):
    """fc1 kept in FP32, fc2 asked for INT8: a Q reformat before fc2 is the boundary."""
    model = make_mlp(tmp_path / "mlp.onnx")
    plan = tmp_path / "m.plan"
    code, out, err = run_cli(capsys, "convert", model, "-o", plan, *FAST, "--int8", "--layer-precisions", "fc2:int8",
                             "fc1:fp32")
    assert code == 0, out + err
    got = precisions(plan)
    assert got["fc2"] == "INT8" and got["fc1"] == "FLOAT"


def test_an_int8_request_that_cannot_be_met_is_one_line_naming_the_layer(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    plan = tmp_path / "m.plan"
    code, _, err = run_cli(capsys, "convert", model, "-o", plan, *FAST, "--int8", "--layer-precisions",
                           "softmax:int8")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "layer 'softmax' (SOFTMAX): precision INT8 is required" in err and "no INT8 implementation" in err
    assert not plan.exists()
    code, out, err = run_cli(capsys, "convert", model, "-o", plan, *FAST, "--int8", "--layer-precisions",
                             "softmax:int8", "--precision-constraints", "prefer", "-vv")
    assert code == 0, out + err
    assert "precision INT8 preferred" in out + err and precisions(plan)["softmax"] == "FLOAT"
