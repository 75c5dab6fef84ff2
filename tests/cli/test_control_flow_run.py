"""`polyx run --engine --onnxrt` on models with control flow: an If on a runtime condition and a Loop whose trip
count depends on the data (its outputs sized while the engine runs)."""
from __future__ import annotations

import onnx
import pytest
from cli_test_models import run_cli
from control_flow_models import if_on_input, loop_until_large, loop_with_nested_if

FAST = ["--builder-optimization-level", "0", "--device", "cpu"]


@pytest.mark.parametrize("make", [if_on_input, loop_until_large], ids=["if", "loop"])
def test_run_compares_control_flow_with_onnxruntime(capsys, tmp_path, make):
    path = tmp_path / "model.onnx"
    onnx.save(make(), path)
    code, out, err = run_cli(capsys, "run", path, "--engine", "--onnxrt", *FAST)
    assert code == 0, out + err
    assert out.strip().splitlines()[-1].startswith("RESULT: PASSED")


def test_capability_takes_a_loop_whose_nested_if_reads_an_outer_tensor(capsys, tmp_path):
    """The If inside the loop body reads `w` from the top graph in both branches (listed once as a trial input)."""
    path = tmp_path / "nested.onnx"
    onnx.save(loop_with_nested_if(), path)
    code, out, err = run_cli(capsys, "inspect", "capability", path)
    assert code == 0, out + err
    assert "all 1 nodes are supported by the engine" in out
