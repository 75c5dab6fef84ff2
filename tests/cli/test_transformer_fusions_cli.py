"""The transformer fusions through the CLI: `polyx convert` builds a BERT-style block into a plan whose ATTENTION
and RESIDUAL_NORMALIZATION layers `inspect model` lists with the ONNX nodes they stand for, and `polyx run
--mark-all` compares the engine as built with onnxruntime, accounting for the tensors inside the fused layers."""
from __future__ import annotations

import json
import re

import onnx
from cli_test_models import run_cli
from transformer_models import attention_model

FAST = ["--builder-optimization-level", "0", "--device", "cpu"]


def test_inspect_lists_the_fused_transformer_layers(capsys, tmp_path):
    onnx.save(attention_model("bert"), tmp_path / "block.onnx")
    code, out, err = run_cli(capsys, "convert", tmp_path / "block.onnx", "-o", tmp_path / "block.plan", *FAST)
    assert code == 0, out + err
    code, out, err = run_cli(capsys, "inspect", "model", tmp_path / "block.plan", "--show", "layers",
                             "--format", "json")
    assert code == 0, err
    layers = {row["type"]: row for row in json.loads(out)["layers"]}
    assert [name.split("_")[0] for name in layers["ATTENTION"]["fused_from"]] == ["Transpose"] * 3 + [
        "Mul", "Mul", "MatMul", "Add", "Softmax", "MatMul", "Transpose"]
    assert [name.split("_")[0] for name in layers["RESIDUAL_NORMALIZATION"]["fused_from"]] == [
        "Add", "LayerNormalization"]


def test_mark_all_accounts_for_the_tensors_inside_attention(capsys, tmp_path):
    onnx.save(attention_model("gpt2"), tmp_path / "causal.onnx")
    code, out, err = run_cli(capsys, "run", tmp_path / "causal.onnx", "--engine", "--onnxrt", "--mark-all", *FAST)
    assert code == 0, out + err
    inside = int(re.search(r"(\d+) inside fused layers", out).group(1))
    assert inside >= 6  # scores, scaled, masked, probs, the transposes: inside the ATTENTION layer
    assert "First divergence: none" in out
