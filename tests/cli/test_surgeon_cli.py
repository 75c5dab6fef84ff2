"""`polyx surgeon`, `polyx check lint`, `polyx inspect capability` through main(): output, exit codes, one-line
errors, and input files left byte-for-byte untouched on failure."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_test_models import make_mlp, shared_model

from polyx.cli.app import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "surgeon"))
from surgeon_models import (  # noqa: E402
    make_checker_failing_model,
    make_cyclic_model,
    make_unsupported_op_model,
    run_ort,
    text_feeds,
)

LN_OUT = "/m/transformer/h.0/ln_2/LayerNormalization_output_0"
MLP_OUT = "/m/transformer/h.0/mlp/c_proj/Reshape_1_output_0"


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("polyx: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_sanitize_prints_counts_and_writes_an_equivalent_model(tmp_path, capsys) -> None:
    source = shared_model("gpt2_tiny")
    out = tmp_path / "gpt2_static.onnx"
    code, stdout, _ = _run(capsys, "surgeon", "sanitize", source, "-o", out, "--fold-constants",
                           "--override-input-shapes", "input_ids:[2,16]", "--infer-shapes")
    assert code == 0
    nodes_before = len(onnx.load(source).graph.node)
    sanitized = onnx.load(out)
    assert f"nodes: {nodes_before} -> {len(sanitized.graph.node)}" in stdout
    assert "initializers:" in stdout and "removed: " in stdout and "Shape x" in stdout
    feeds = text_feeds({"input_ids": [2, 16]})
    np.testing.assert_array_equal(run_ort(out, feeds)["logits"], run_ort(source, feeds)["logits"])


def test_sanitize_multiple_shape_overrides_after_one_flag(tmp_path, capsys) -> None:
    out = tmp_path / "bert.onnx"
    code, _, err = _run(capsys, "surgeon", "sanitize", shared_model("bert_tiny"), "-o", out, "--fold-constants",
                        "--override-input-shapes", "input_ids:[1,8]", "attention_mask:[1,8]", "--num-passes", "2")
    assert code == 0, err
    dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in onnx.load(out).graph.input}
    assert dims == {"input_ids": [1, 8], "attention_mask": [1, 8]}


def test_extract_and_insert_commands(tmp_path, capsys) -> None:
    sub = tmp_path / "mlp.onnx"
    code, stdout, err = _run(capsys, "surgeon", "extract", shared_model("gpt2_tiny"), "--inputs",
                             f"{LN_OUT}:auto:float32", "--outputs", f"{MLP_OUT}:auto", "-o", sub)
    assert code == 0, err
    assert f"{LN_OUT} -> {MLP_OUT}" in stdout
    onnx.checker.check_model(str(sub))
    replaced = tmp_path / "replaced.onnx"
    code, stdout, err = _run(capsys, "surgeon", "insert", sub, "--inputs", LN_OUT, "--outputs", MLP_OUT,
                             "--op", "FusedMlp", "--attrs", "hidden=512", "act=gelu_tanh", "-o", replaced)
    assert code == 0, err
    node = onnx.load(replaced).graph.node
    assert len(node) == 1 and node[0].op_type == "FusedMlp"
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node[0].attribute}
    assert attrs == {"hidden": 512, "act": b"gelu_tanh"}


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


@pytest.mark.parametrize("case", ["missing_tensor", "cycle", "checker", "missing_folder", "same_as_input",
                                  "output_is_directory"])
def test_bad_input_is_one_line_exit_2_and_input_untouched(tmp_path, capsys, case) -> None:
    model_path = tmp_path / "model.onnx"
    if case == "cycle":
        onnx.save(make_cyclic_model(), model_path)
    elif case == "checker":
        onnx.save(make_checker_failing_model(), model_path)
    else:
        make_mlp(model_path)
    original = _bytes(model_path)
    out = {"missing_folder": tmp_path / "nowhere" / "out.onnx", "same_as_input": model_path,
           "output_is_directory": tmp_path}.get(case, tmp_path / "out.onnx")
    if case == "missing_tensor":
        args = ["surgeon", "extract", model_path, "--inputs", "h1", "--outputs", "no_such_tensor", "-o", out]
    else:
        args = ["surgeon", "sanitize", model_path, "--fold-constants", "-o", out]
    code, stdout, err = _run(capsys, *args)
    assert code == 2
    expected = {"missing_tensor": ["no tensor named 'no_such_tensor'"], "cycle": ["cycle", "'add'"],
                "checker": ["fails onnx.checker", "bad_relu"], "missing_folder": ["does not exist"],
                "same_as_input": ["refusing to overwrite the input model"],
                "output_is_directory": ["is a directory"]}[case]
    _assert_one_line_error(err, *expected)
    assert _bytes(model_path) == original
    if case not in ("same_as_input", "output_is_directory"):
        assert not out.exists()


def test_insert_unknown_tensor_and_bad_attribute(tmp_path, capsys) -> None:
    model_path = make_mlp(tmp_path / "mlp.onnx")
    code, _, err = _run(capsys, "surgeon", "insert", model_path, "--inputs", "x", "--outputs", "logit",
                        "--op", "P", "-o", tmp_path / "o.onnx")
    assert code == 2
    _assert_one_line_error(err, "--outputs: no tensor named 'logit'", "did you mean 'logits'")
    code, _, err = _run(capsys, "surgeon", "insert", model_path, "--inputs", "x", "--outputs", "logits",
                        "--op", "P", "--attrs", "novalue", "-o", tmp_path / "o.onnx")
    assert code == 2
    _assert_one_line_error(err, "--attrs: expected key=value")


def test_check_lint_clean_and_dirty(tmp_path, capsys) -> None:
    clean = make_mlp(tmp_path / "mlp.onnx")
    code, stdout, _ = _run(capsys, "check", "lint", clean)
    assert code == 0 and "no problems found" in stdout
    dirty = tmp_path / "bad.onnx"
    onnx.save(make_checker_failing_model(), dirty)
    code, stdout, _ = _run(capsys, "check", "lint", dirty, "--format", "json")
    assert code == 1
    report = json.loads(stdout)
    assert report["ok"] is False
    assert {f["kind"] for f in report["findings"]} >= {"checker", "onnxruntime"}
    assert all(f["node"] == "bad_relu" for f in report["findings"])
    code, _, err = _run(capsys, "check", "lint", tmp_path / "missing.onnx")
    assert code == 2
    _assert_one_line_error(err, "no such file")


def test_inspect_capability_writes_partitions(tmp_path, capsys) -> None:
    model_path = tmp_path / "quantize.onnx"
    onnx.save(make_unsupported_op_model(), model_path)
    out_dir = tmp_path / "capability"
    code, stdout, err = _run(capsys, "inspect", "capability", model_path, "-o", out_dir)
    assert code == 0, err
    assert "[2] quantize (DynamicQuantizeLinear): operator: unsupported operator" in stdout
    results = json.loads((out_dir / "results.json").read_text())
    assert results["num_nodes"] == 8 and results["num_supported"] == 7
    files = [s["file"] for s in results["subgraphs"]]
    assert files == ["supported_subgraph-nodes-0-1.onnx", "unsupported_subgraph-nodes-2-2.onnx",
                     "supported_subgraph-nodes-3-7.onnx"]
    for name in files:
        onnx.checker.check_model(str(out_dir / name))
    assert (out_dir / "results.txt").read_text().startswith(f"model: {model_path}")


def test_inspect_capability_fully_supported_is_one_line(tmp_path, capsys) -> None:
    model_path = make_mlp(tmp_path / "mlp.onnx")
    code, stdout, _ = _run(capsys, "inspect", "capability", model_path)
    assert code == 0
    assert stdout.strip().splitlines() == [f"{model_path}: all 5 nodes are supported by the engine"]


def test_inspect_capability_missing_output_parent(tmp_path, capsys) -> None:
    model_path = tmp_path / "quantize.onnx"
    onnx.save(make_unsupported_op_model(), model_path)
    code, _, err = _run(capsys, "inspect", "capability", model_path, "-o", tmp_path / "a" / "b")
    assert code == 2
    _assert_one_line_error(err, "does not exist")
