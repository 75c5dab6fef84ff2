"""polyx --bf16, --strongly-typed, --profiling-verbosity, --version-compatible and --hardware-compatibility-level:
what the built plan records (read back with `inspect model --format json`) and how runs compare with onnxruntime."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from cli_test_models import make_mlp, run_cli
from onnx import TensorProto, helper, numpy_helper

COMMON = ["--device", "cpu", "--builder-optimization-level", "0", "--input-shapes", "x:[4,32]"]


def convert(capsys, tmp_path, model, *flags) -> dict:
    plan = tmp_path / "m.plan"
    code, _, err = run_cli(capsys, "convert", model, "-o", plan, *COMMON, *flags)
    assert code == 0, err
    code, out, err = run_cli(capsys, "inspect", "model", plan, "--show", "layers", "--format", "json")
    assert code == 0, err
    return json.loads(out)


def half_model(path):
    """x float16 [4,32] → MatMul (float16 weights) → Relu → y float16: an fp16 ONNX model."""
    w = (np.random.default_rng(1).standard_normal((32, 8)) * 0.2).astype(np.float16)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"), helper.make_node("Relu", ["h"], ["y"])]
    graph = helper.make_graph(nodes, "half", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [4, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [4, 8])],
                              [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_bf16_run_matches_onnxruntime_within_bfloat16_tolerance(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    both = ["run", model, "--bf16", "--engine", "--onnxrt"]
    code, out, err = run_cli(capsys, *both, "--atol", "0.02", "--rtol", "0.05", *COMMON)
    assert code == 0, out + err
    code, out, _ = run_cli(capsys, *both, "--atol", "1e-6", "--rtol", "1e-6", *COMMON)
    assert code == 1, "bfloat16 rounding must be visible at a float32 tolerance"


def test_bf16_plan_runs_its_layers_in_bf16(capsys, tmp_path):
    report = convert(capsys, tmp_path, make_mlp(tmp_path / "mlp.onnx"), "--bf16")
    precisions = {row["name"]: row["precision"] for row in report["layers"] if row["type"] != "REFORMAT"}
    assert set(precisions.values()) == {"BF16"} and report["flags"]["BF16"] is True
    assert [(r["from"], r["to"]) for r in report["reformat_layers"]] == [("FLOAT", "BF16"), ("BF16", "FLOAT")]


def test_layer_precision_bf16_is_accepted(capsys, tmp_path):
    report = convert(capsys, tmp_path, make_mlp(tmp_path / "mlp.onnx"), "--layer-precisions", "fc2:bf16")
    precisions = {row["name"]: row["precision"] for row in report["layers"]}
    assert precisions["fc2"] == "BF16" and precisions["fc1"] == "FLOAT"


def test_strongly_typed_runs_an_fp16_model_in_half_and_refuses_precision_flags(capsys, tmp_path):
    model = half_model(tmp_path / "half.onnx")
    report = convert(capsys, tmp_path, model, "--strongly-typed")
    assert report["strongly_typed"] is True
    assert {row["precision"] for row in report["layers"]} == {"HALF"} and not report["reformat_layers"]
    code, out, err = run_cli(capsys, "run", model, "--strongly-typed", "--engine", "--onnxrt", *COMMON)
    assert code == 0, out + err
    code, _, err = run_cli(capsys, "convert", model, "-o", tmp_path / "x.plan", "--strongly-typed", "--fp16",
                           *COMMON)
    assert code == 2 and "--strongly-typed takes the precisions from the model's types; --fp16 cannot" in err


@pytest.mark.parametrize("verbosity, names, tactics", [("detailed", True, True), ("layer_names_only", True, False),
                                                        ("none", False, False)])
def test_profiling_verbosity_decides_what_inspect_shows(capsys, tmp_path, verbosity, names, tactics):
    report = convert(capsys, tmp_path, make_mlp(tmp_path / "mlp.onnx"), "--profiling-verbosity", verbosity)
    assert report["profiling_verbosity"] == verbosity.upper()
    layers = report["layers"]
    assert ("fc2" in [row["name"] for row in layers]) == names
    assert all(("tactic" in row) == tactics and ("formats" in row) == tactics for row in layers)
    assert bool(report["tactics"]) == tactics
    if tactics:
        (fc2,) = [row for row in layers if row["name"] == "fc2"]
        assert fc2["formats"] == {"inputs": ["FLOAT [-1, 64]", "FLOAT [64, 10]"], "outputs": ["FLOAT [-1, 10]"]}


def test_compatibility_flags_are_recorded(capsys, tmp_path):
    report = convert(capsys, tmp_path, make_mlp(tmp_path / "mlp.onnx"), "--version-compatible",
                     "--hardware-compatibility-level", "ampere_plus")
    assert report["compatibility"]["compute_capability"] == "cpu"
    assert report["compatibility"]["version_compatible"] is True
    assert report["compatibility"]["hardware_compatibility_level"] == "AMPERE_PLUS"
    code, out, _ = run_cli(capsys, "inspect", "model", tmp_path / "m.plan")
    assert "version compatible" in out and "hardware compatibility AMPERE_PLUS" in out


def test_unknown_verbosity_is_a_usage_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "convert", make_mlp(tmp_path / "mlp.onnx"), "-o", tmp_path / "m.plan",
                           "--profiling-verbosity", "loud", *COMMON)
    assert code == 2 and "--profiling-verbosity" in err


def test_a_plan_for_another_device_is_a_one_line_error(capsys, tmp_path):
    from engine.container import pack, unpack
    from engine.plan import FORMAT_VERSION, MAGIC

    convert(capsys, tmp_path, make_mlp(tmp_path / "mlp.onnx"))
    header, arrays = unpack((tmp_path / "m.plan").read_bytes(), MAGIC, FORMAT_VERSION, "plan")
    header.pop("buffers")
    header["meta"]["compatibility"]["compute_capability"] = "9.0"
    (tmp_path / "gpu.plan").write_bytes(pack(MAGIC, FORMAT_VERSION, header, arrays))
    code, _, err = run_cli(capsys, "run", tmp_path / "gpu.plan", "--engine")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "built for compute capability 9.0, but this device is cpu" in err
