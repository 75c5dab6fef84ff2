"""`--tactic-sources`: the builder leaves out the tactics of sources not named (Polygraphy spelling)."""
from __future__ import annotations

from typing import Any

import pytest
from cli_test_models import make_mlp, run_cli

import engine as trt
from engine.ops.base import layer_impl
from engine.tactics import unregister_tactic


class CudnnSourcedMatmul(trt.Tactic):
    """A CPU matmul claiming the CUDNN source, preferred over every built-in one when nothing is timed."""

    name = "test_cudnn_sourced_matmul"
    layer_type = trt.LayerType.MATRIX_MULTIPLY
    source = trt.TacticSource.CUDNN
    heuristic_rank = -1

    def prepare(self, ctx: trt.TacticContext) -> Any:
        return ctx.layer

    def run(self, state: Any, inputs: list[Any], outputs: list[Any], workspace: Any, xp: Any) -> None:
        for out, result in zip(outputs, layer_impl(self.layer_type).compute(state, inputs, xp)):
            xp.copyto(out, result, casting="unsafe")


@pytest.fixture
def cudnn_matmul():
    tactic = trt.register_tactic(CudnnSourcedMatmul())
    yield tactic
    unregister_tactic(tactic)


def _fc1_tactic(plan_path) -> str:
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan_path.read_bytes())
    return {row["name"]: row["tactic"] for row in engine.layer_info()}["fc1"]


def test_tactic_sources_leave_out_unnamed_sources(capsys, tmp_path, cudnn_matmul):
    model = make_mlp(tmp_path / "mlp.onnx")
    args = ["convert", model, "--device", "cpu", "--builder-optimization-level", "0", "--input-shapes", "x:[2,32]"]
    code, _, err = run_cli(capsys, *args, "-o", tmp_path / "all.plan")
    assert code == 0, err
    assert _fc1_tactic(tmp_path / "all.plan") == "test_cudnn_sourced_matmul"

    code, _, err = run_cli(capsys, *args, "-o", tmp_path / "cublas.plan", "--tactic-sources", "CUBLAS",
                           "jit_convolutions")
    assert code == 0, err
    assert _fc1_tactic(tmp_path / "cublas.plan") == "cpu:matmul:constant_weight_gemm"  # next by heuristic rank

    code, _, err = run_cli(capsys, *args, "-o", tmp_path / "cudnn.plan", "--tactic-sources", "cuDNN")
    assert code == 0, err
    assert _fc1_tactic(tmp_path / "cudnn.plan") == "test_cudnn_sourced_matmul"


def test_unknown_tactic_source_is_exit_2_listing_valid_names(capsys, tmp_path):
    model = make_mlp(tmp_path / "mlp.onnx")
    code, _, err = run_cli(capsys, "convert", model, "-o", tmp_path / "m.plan", "--tactic-sources", "cublas", "cudnn8")
    assert code == 2
    assert err.strip() == ("polyx: error: --tactic-sources 'cudnn8': unknown tactic source (valid: cublas, cublas_lt, "
                           "cudnn, edge_mask_convolutions, jit_convolutions)")
