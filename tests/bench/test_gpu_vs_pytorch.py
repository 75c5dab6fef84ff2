"""bench/gpu_vs_pytorch.py: its CPU-safe parts (arguments, ratios, diffs, table/Markdown/JSON), and, where torch
and transformers are installed, the BERT export path on the CPU checked against PyTorch through the engine."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_vs_pytorch.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("gpu_vs_pytorch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def test_arguments_defaults_quick_and_errors(script, tmp_path):
    settings = script.parse_args([])
    assert settings.models == ["resnet50", "bert"] and settings.batches == [1, 32] and settings.seq == 128
    assert settings.precisions == ["fp32", "fp16"] and settings.compile_precisions == ["fp16"]
    assert (settings.warmup, settings.iterations, settings.opt_level) == (10, 50, 3)
    quick = script.parse_args(["--quick", "--models", "bert", "--batches", "8,1", "--json", str(tmp_path / "r.json")])
    assert quick.models == ["bert"] and quick.batches == [1, 8] and quick.compile_precisions == []
    assert (quick.warmup, quick.iterations, quick.opt_level) == (3, 10, 1) and quick.json == tmp_path / "r.json"
    assert script.parse_args(["--compile", "fp32,fp16"]).compile_precisions == ["fp32", "fp16"]
    assert script.parse_args(["--compile", "none"]).compile_precisions == []
    for bad in (["--models", "vgg"], ["--batches", "0"], ["--batches", "a"], ["--batches", "64"],
                ["--opt-level", "9"], ["--json", str(tmp_path / "missing" / "r.json")]):
        with pytest.raises(SystemExit) as exit_info:
            script.parse_args(bad)
        assert exit_info.value.code == 2


def test_output_diffs_are_absolute_and_relative_to_the_reference_scale(script):
    ref = [np.array([1.0, -4.0, 2.0]), np.array([[10.0]])]
    out = [np.array([1.5, -4.0, 2.0], np.float32), np.array([[9.0]], np.float16)]
    max_abs, max_rel = script.output_diffs(out, ref)
    assert max_abs == pytest.approx(1.0)                   # |9 - 10| in the second output
    assert max_rel == pytest.approx(max(0.5 / 4.0, 1.0 / 10.0))
    with pytest.raises(ValueError, match="shape"):
        script.output_diffs([np.zeros(2)], [np.zeros(3)])


def _rows(script):
    return [script.row("resnet50", 1, "fp32", script.EAGER, median_ms=4.0, samples=50, diffs=(0.0, 0.0)),
            script.row("resnet50", 1, "fp32", "polyx", median_ms=3.0, samples=50, diffs=(1e-5, 2e-6)),
            script.row("resnet50", 1, "fp16", "polyx", median_ms=2.0, samples=50, diffs=(1e-2, 3e-3)),
            script.row("resnet50", 1, "fp16", "torch.compile", "failed: TimeoutError: did not finish")]


def test_ratios_use_eager_of_the_same_model_batch_and_precision(script):
    rows = script.add_ratios(_rows(script))
    assert [r["time_vs_eager"] for r in rows] == [1.0, 0.75, None, None]  # no fp16 eager row, no time


def test_text_table_markdown_and_json(script, tmp_path):
    settings = script.parse_args(["--batches", "1", "--json", str(tmp_path / "r.json"),
                                  "--markdown", str(tmp_path / "r.md")])
    meta = {"date": "2026-01-02T03:04:05", "gpu": "NVIDIA H100 80GB HBM3", "versions": {"torch": "2.11.0"}}
    builds = [{"model": "resnet50", "precision": "fp32", "profile": "batch 1..1 opt 1", "seconds": 12.5,
               "device_layers": 70, "status": "ok"}]
    document = script.result_document(meta, settings, _rows(script), builds)
    script.write_outputs(document, settings)
    loaded = json.loads((tmp_path / "r.json").read_text())
    assert loaded["schema"] == "polyx-gpu-vs-pytorch/1" and loaded["meta"] == meta
    assert loaded["settings"]["opt_batch"] == 1 and loaded["rows"][1]["time_vs_eager"] == 0.75
    markdown = (tmp_path / "r.md").read_text()
    assert "- date: 2026-01-02T03:04:05" in markdown and "- GPU: NVIDIA H100 80GB HBM3" in markdown
    assert "| resnet50 | 1 | fp32 | polyx | 3.000 | 0.75x | 1.00e-05 | 2.00e-06 | ok |" in markdown
    assert "| resnet50 | 1 | fp16 | torch.compile | - | - | - | - | failed: TimeoutError: did not finish |" in markdown
    assert "| resnet50 | fp32 | batch 1..1 opt 1 | 12.500 | 70 | ok |" in markdown
    text = script.format_text_table(loaded["rows"]).splitlines()
    assert text[0].split()[:4] == ["model", "batch", "precision", "runner"] and len(text) == 5
    assert "0.75x" in text[2]


def test_bert_export_runs_on_the_engine_like_pytorch(script, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from polyx.build import BuildOptions, build_engine

    config = transformers.BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=2,
                                      intermediate_size=128, vocab_size=500)
    spec = script.bert_spec(seq=8, config=config, device="cpu")
    path = tmp_path / "bert.onnx"
    script.export_onnx(spec, path)
    shapes = {name: (1, 4) for name in spec.input_names}
    engine, _, _ = build_engine(path, BuildOptions(min_shapes=shapes, opt_shapes={n: (3, 8) for n in shapes},
                                                   max_shapes={n: (4, 16) for n in shapes}, optimization_level=0,
                                                   device="cpu"))
    inputs = spec.make_inputs(3)                           # batch 3, seq 8: not the export's batch 2
    with torch.no_grad():
        expected = script.TorchVariant(spec.module, inputs).results()
    outputs = engine.create_execution_context().execute({n: t.numpy() for n, t in zip(spec.input_names, inputs)})
    max_abs, _ = script.output_diffs([outputs[n] for n in spec.output_names], expected)
    assert max_abs < 1e-4
