"""`--plugins` and `polyx plugin list/match/replace` on the example models and example plugins: a custom op that
runs end to end as a plugin (checked against onnxruntime on the model's two halves and NumPy in float64 for the op),
and a GELU subgraph replaced by a plugin whose engine outputs still match onnxruntime on the original model."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from cli_test_models import run_cli

from polyx.data.files import load_tensors
from surgeon.extract import extract
from surgeon.tensor_specs import TensorSpec

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "examples" / "models"
PLUGINS = ROOT / "examples" / "plugins" / "example_plugins.py"


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_the_custom_op_model_runs_with_its_plugin(capsys, tmp_path) -> None:
    x = np.random.default_rng(1).normal(size=(2, 3, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "in.npz", input=x)
    code, out, err = run_cli(capsys, "run", MODELS / "custom_op.onnx", "--engine", "--plugins", PLUGINS,
                             "--load-inputs", tmp_path / "in.npz", "--save-outputs", tmp_path / "out.npz")
    assert code == 0, err
    engine_pooled = load_tensors(tmp_path / "out.npz")[0]["pooled"]
    # Reference: onnxruntime before and after the custom op, ClipNorm itself in float64.
    model = onnx.load(MODELS / "custom_op.onnx")
    (before,) = _ort(extract(model, [TensorSpec("input")], [TensorSpec("conv1_relu")]), {"input": x})
    norm = np.sqrt((before.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
    clipped = before * np.minimum(1.0, 1.0 / np.maximum(norm, 1e-12))
    assert (norm > 1).any()  # the op does clip something here
    (expected,) = _ort(extract(model, [TensorSpec("clip_norm", dtype=np.float32)], [TensorSpec("pooled")]),
                       {"clip_norm": clipped.astype(np.float32)})
    np.testing.assert_allclose(engine_pooled, expected, rtol=1e-4, atol=1e-5)


def test_without_the_plugin_the_custom_op_is_unsupported(capsys) -> None:
    code, _, err = run_cli(capsys, "run", MODELS / "custom_op.onnx", "--engine")
    assert code == 2 and "clip_norm" in err and "ClipNorm" in err


def test_inspect_capability_counts_a_plugin_op_as_supported(capsys) -> None:
    code, out, _ = run_cli(capsys, "inspect", "capability", MODELS / "custom_op.onnx", "--plugins", PLUGINS)
    assert code == 0 and "all 8 nodes are supported" in out


def test_plugin_list_names_plugin_nodes_and_matches(capsys) -> None:
    code, out, err = run_cli(capsys, "plugin", "list", MODELS / "custom_op.onnx", "--plugins", PLUGINS)
    assert code == 0, err
    assert "clip_norm (com.example::ClipNorm): imports as plugin ClipNorm version 1" in out
    assert "ErfGelu version 1: erf [cpu/gpu], erfc [cpu/gpu]; pattern" in out
    code, out, _ = run_cli(capsys, "plugin", "list", MODELS / "transformer.onnx", "--plugins", PLUGINS)
    assert "ErfGelu: gelu_div, gelu_erf, gelu_add, gelu_mul, gelu (mlp_fc1_bias -> gelu)" in out


def test_match_replace_then_run_matches_onnxruntime_on_the_original(capsys, tmp_path) -> None:
    original = MODELS / "transformer.onnx"
    config, replaced = tmp_path / "matches.json", tmp_path / "replaced.onnx"
    assert run_cli(capsys, "plugin", "match", original, "--plugins", PLUGINS, "-o", config)[0] == 0
    entries = json.loads(config.read_text())["replacements"]
    assert [(e["plugin"], e["nodes"]) for e in entries] == [
        ("ErfGelu", ["gelu_div", "gelu_erf", "gelu_add", "gelu_mul", "gelu"])]
    code, out, err = run_cli(capsys, "plugin", "replace", original, "--config", config, "-o", replaced)
    assert code == 0, err
    ops = [n.op_type for n in onnx.load(replaced).graph.node]
    assert ops.count("ErfGelu") == 1 and "Erf" not in ops
    x = np.random.default_rng(2).normal(size=(2, 5, 64)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    (expected,) = _ort(onnx.load(original), {"x": x})
    np.savez(tmp_path / "expected.npz", y=expected)
    code, out, err = run_cli(capsys, "run", replaced, "--engine", "--plugins", PLUGINS, "--load-inputs",
                             tmp_path / "in.npz", "--load-outputs", tmp_path / "expected.npz", "--atol", "1e-4",
                             "--rtol", "1e-4", "-v", "--device", "cpu")
    assert code == 0, out + err
    assert "PLUGIN_V2: cpu_plugin_ErfGelu_" in out  # one of its two implementations, chosen by timing


def test_replace_skips_entries_marked_false(capsys, tmp_path) -> None:
    config, replaced = tmp_path / "matches.json", tmp_path / "replaced.onnx"
    run_cli(capsys, "plugin", "match", MODELS / "transformer.onnx", "--plugins", PLUGINS, "-o", config)
    data = json.loads(config.read_text())
    data["replacements"][0]["replace"] = False
    config.write_text(json.dumps(data))
    code, out, _ = run_cli(capsys, "plugin", "replace", MODELS / "transformer.onnx", "--config", config, "-o", replaced)
    assert code == 0 and "replaced 0 subgraph(s)" in out
    assert "Erf" in [n.op_type for n in onnx.load(replaced).graph.node]


def test_plugins_flag_errors_name_the_file(capsys, tmp_path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import engine\nraise RuntimeError('no GPU here')\n")
    code, _, err = run_cli(capsys, "run", MODELS / "cnn.onnx", "--engine", "--plugins", broken)
    assert code == 2 and f"--plugins {broken}: importing it failed: RuntimeError: no GPU here" in err
    code, _, err = run_cli(capsys, "run", MODELS / "cnn.onnx", "--engine", "--plugins", tmp_path / "missing.py")
    assert code == 2 and "missing.py: no such file" in err
    library = tmp_path / "libplugin.so"
    library.write_bytes(b"\x7fELF")
    code, _, err = run_cli(capsys, "convert", MODELS / "cnn.onnx", "-o", tmp_path / "x.plan", "--plugins", library)
    assert code == 2 and "Python modules (.py)" in err and not (tmp_path / "x.plan").exists()


def test_replacement_file_errors(capsys, tmp_path) -> None:
    model, out = MODELS / "transformer.onnx", tmp_path / "out.onnx"
    cases = {
        "not json": "cannot read the replacement file",
        json.dumps({"format": "other"}): "not a polyx plugin replacement file",
        json.dumps({"format": "polyx-plugin-replacements", "version": 1, "replacements": [{"plugin": "X"}]}):
            "replacements[0].plugin_version must be a string",
        json.dumps({"format": "polyx-plugin-replacements", "version": 1, "replacements": [
            {"plugin": "X", "plugin_version": "1", "plugin_namespace": "", "inputs": ["a"], "outputs": ["b"],
             "nodes": ["no_such_node"]}]}): "node(s) no_such_node are not in the model",
    }
    for text, message in cases.items():
        config = tmp_path / "c.json"
        config.write_text(text)
        code, _, err = run_cli(capsys, "plugin", "replace", model, "--config", config, "-o", out)
        assert code == 2 and message in err, (text, err)
        assert not out.exists()
    code, _, err = run_cli(capsys, "plugin", "replace", model, "--config", model, "-o", model)
    assert code == 2 and "refusing to overwrite the input model" in err


def test_match_needs_a_plugin_with_a_pattern(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "plugin", "match", MODELS / "transformer.onnx", "-o", tmp_path / "m.json")
    assert code == 2 and "declares a pattern()" in err and not (tmp_path / "m.json").exists()


def test_the_python_example_in_docs_runs(monkeypatch, capsys) -> None:
    text = (ROOT / "docs" / "plugins.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "example_plugins", None)
    del sys.modules["example_plugins"]  # imported fresh, so it registers (the suite's hook unregisters after)
    exec(compile(block, "docs/plugins.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "(2, 8, 1, 1)"
