"""`polyx run --engine --onnxrt` on models with data-dependent outputs (NonZero mask selection, an NMS chain),
every tensor compared with onnxruntime, and a saved engine reloaded."""
from __future__ import annotations

import onnx
import pytest
from cli_test_models import run_cli
from data_dependent_models import detection_model, mask_model

FAST = ["--builder-optimization-level", "0", "--device", "cpu"]


@pytest.mark.parametrize("make,shapes,count", [
    (mask_model, ["--input-shapes", "x:[6,5]"], 5),
    (detection_model, ["--input-shapes", "boxes:[1,30,4]", "scores:[1,30]"], 2),
])
def test_run_engine_against_onnxruntime(capsys, tmp_path, make, shapes, count):
    path = tmp_path / "model.onnx"
    onnx.save(make(), path)
    code, out, err = run_cli(capsys, "run", path, "--engine", "--onnxrt", *FAST, *shapes)
    assert code == 0, out + err
    assert out.strip().splitlines()[-1].startswith(f"RESULT: PASSED ({count} tensor(s) compared")


def test_mark_all_and_saved_engine(capsys, tmp_path):
    path, plan = tmp_path / "det.onnx", tmp_path / "det.plan"
    onnx.save(detection_model(), path)
    shapes = ["--input-shapes", "boxes:[1,30,4]", "scores:[1,30]"]
    code, out, err = run_cli(capsys, "run", path, "--engine", "--onnxrt", "--mark-all", *FAST, *shapes)
    assert code == 0 and "RESULT: PASSED" in out, out + err
    assert run_cli(capsys, "run", path, "--engine", *FAST, *shapes, "--save-engine", plan)[0] == 0
    code, out, err = run_cli(capsys, "run", path, "--engine", "--onnxrt", "--load-engine", plan, *shapes)
    assert code == 0 and "RESULT: PASSED (2 tensor(s) compared" in out, out + err
