"""bench/gpu_int8.py: its CPU-safe parts (arguments, top-1 agreement, ratios, table/Markdown/JSON). The measuring
part needs torch, CuPy and a GPU (the lead runs it on the GPU machine)."""
import json

import numpy as np
import pytest
from bench_scripts import load_bench_script


@pytest.fixture(scope="module")
def script():
    return load_bench_script("gpu_int8")


def test_arguments_defaults_quick_and_errors(script, tmp_path):
    s = script.parse_args([])
    assert (s.batch, s.calibration_batches, s.calibration_batch_size, s.agreement_batches) == (32, 4, 8, 4)
    assert (s.calibrator, s.warmup, s.iterations, s.opt_level, s.budget_s) == ("EntropyCalibrator2", 10, 50, 3, 450)
    quick = script.parse_args(["--quick", "--batch", "8", "--calibrator", "MinMaxCalibrator", "--calibration-batches",
                               "3", "--json", str(tmp_path / "r.json")])
    assert (quick.batch, quick.calibration_batches, quick.calibration_batch_size) == (8, 3, 4)
    assert (quick.agreement_batches, quick.warmup, quick.iterations, quick.opt_level) == (1, 3, 10, 1)
    assert quick.calibrator == "MinMaxCalibrator" and quick.json == tmp_path / "r.json"
    for bad in (["--batch", "0"], ["--batch", "x"], ["--calibrator", "Percentile"], ["--opt-level", "7"],
                ["--budget-s", "30"], ["--markdown", str(tmp_path / "missing" / "r.md")]):
        with pytest.raises(SystemExit) as exit_info:
            script.parse_args(bad)
        assert exit_info.value.code == 2, bad


def test_top1_agreement_and_logit_difference_over_batches(script):
    reference = [np.array([[0.0, 2.0, 1.0], [5.0, 1.0, 0.0]]), np.array([[0.0, 0.0, 3.0]])]  # classes 1, 0 | 2
    logits = [np.array([[0.0, 2.5, 1.0], [1.0, 4.0, 0.0]]), np.array([[0.0, 0.0, 3.25]])]    # classes 1, 1 | 2
    assert script.top1_agreement(logits, reference) == pytest.approx(2 / 3)
    assert script.max_abs_diff(logits, reference) == pytest.approx(4.0)                      # |1 - 5|
    with pytest.raises(ValueError, match="predictions"):
        script.top1_agreement([np.zeros((2, 3))], [np.zeros((3, 3))])


def _rows(script):
    rows = [script.row("fp32", median_ms=10.0, samples=50, build_s=2.0),
            script.row("fp16", median_ms=4.0, samples=50, build_s=2.5),
            script.row("int8", median_ms=2.5, samples=50, build_s=40.0)]
    rows[0].update(top1_vs_fp32=1.0, max_abs_diff_vs_fp32=0.0)
    rows[1].update(top1_vs_fp32=0.96875, max_abs_diff_vs_fp32=0.0125)
    rows[2].update(top1_vs_fp32=0.90625, max_abs_diff_vs_fp32=0.5)
    return rows


def test_ratios_are_against_the_fp16_engine_of_the_same_run(script):
    rows = script.add_ratios(_rows(script))
    assert [r["time_vs_fp16"] for r in rows] == [2.5, 1.0, 0.625]
    assert script.speedup_line(rows).startswith("INT8 vs FP16: 1.60x")
    failed = script.add_ratios([script.row("fp16", "failed: build"), script.row("int8", median_ms=2.0)])
    assert [r["time_vs_fp16"] for r in failed] == [None, None]
    assert script.speedup_line(failed) == "INT8 vs FP16: not measured"


def test_text_table_markdown_and_json(script, tmp_path, capsys):
    settings = script.parse_args(["--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")])
    meta = {"date": "2026-12-05T12:00:00", "gpu": "NVIDIA H100 80GB HBM3", "versions": {"torch": "2.11.0"}}
    sanity = {"agreement_inputs": 128, "fp32_top1_vs_pytorch": 1.0, "fp32_distinct_classes": 37}
    rows = _rows(script) + [script.row("int8", "failed build: TimeoutError: did not finish within 390 s")]
    document = script.result_document(meta, settings, rows, sanity, {"CONVOLUTION INT8": 53}, {"fp32": {}})
    script.write_outputs(document, settings)
    loaded = json.loads((tmp_path / "r.json").read_text())
    assert loaded["schema"] == "polyx-gpu-int8/1" and loaded["meta"] == meta and loaded["sanity"] == sanity
    assert loaded["settings"]["batch"] == 32 and loaded["rows"][2]["time_vs_fp16"] == 0.625
    markdown = (tmp_path / "r.md").read_text()
    assert "- GPU: NVIDIA H100 80GB HBM3" in markdown and "EntropyCalibrator2 over 4 x 8" in markdown
    assert "| int8 | 2.500 | 0.62x | 90.62% | 5.00e-01 | 40.000 | ok |" in markdown
    assert "| int8 | - | - | - | - | - | failed build: TimeoutError: did not finish within 390 s |" in markdown
    assert "predicts 37 distinct classes" in markdown and "on 100.00% of them" in markdown
    assert "INT8 engine layers (type precision: count): CONVOLUTION INT8: 53" in markdown
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["precision", "median", "ms"] and len(out) == 6 and "1.60x" in out[-1]


def test_profiles_go_into_the_json_and_the_markdown(script, tmp_path):
    settings = script.parse_args(["--profile-top", "1", "--markdown", str(tmp_path / "r.md")])
    assert settings.profile_top == 1
    meta = {"date": "2026-12-05T12:00:00", "gpu": "NVIDIA H100 80GB HBM3", "versions": {}}
    sanity = {"agreement_inputs": 0, "fp32_top1_vs_pytorch": None, "fp32_distinct_classes": None}
    profile = {"model": "resnet50", "precision": "int8", "batch": 32, "status": "ok", "runs": 3, "total_ms": 5.0,
               "layers": 60, "top": [{"name": "conv1", "type": "CONVOLUTION", "tactic": "gpu:convolution:int8",
                                      "source": "CUBLAS", "median_ms": 0.5, "share": 0.1}],
               "by_type": [{"type": "CONVOLUTION", "layers": 53, "median_ms": 4.5, "share": 0.9}]}
    document = script.result_document(meta, settings, _rows(script), sanity, profiles=[profile])
    assert document["profiles"] == [profile] and document["settings"]["profile_top"] == 1
    markdown = script.format_markdown(document)
    assert "### resnet50 int8 batch 32: 3 profiled runs, 5.000 ms summed over 60 layers" in markdown
    assert "| 1 | conv1 | CONVOLUTION | gpu:convolution:int8 | CUBLAS | 0.5000 | 10.0% |" in markdown
    assert "| CONVOLUTION | 53 | 4.5000 | 90.0% |" in markdown


def test_channels_last_option_and_the_layout_record(script, tmp_path):
    from types import SimpleNamespace

    assert script.parse_args([]).channels_last == "auto"
    assert [script.parse_args(["--channels-last", m]).channels_last for m in ("off", "on", "auto")] == \
        [False, True, "auto"]
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(["--channels-last", "nhwc"])
    assert exit_info.value.code == 2

    def tensor(dtype, layout):
        return SimpleNamespace(dtype=SimpleNamespace(value=dtype), format=SimpleNamespace(value=layout))
    engine = SimpleNamespace(graph=SimpleNamespace(tensors=[tensor("INT8", "HWC"), tensor("HALF", "HWC"),
                                                            tensor("INT8", "LINEAR")]),
                             meta={"channels_last": {"mode": "auto", "chains": [
                                 {"first": "a", "layers": 3, "linear_ms": 1.0, "hwc_ms": 0.5, "hwc": True},
                                 {"first": "b", "layers": 1, "linear_ms": 0.25, "hwc_ms": 0.5, "hwc": False}]}})
    record = script.format_record(engine)
    assert record == {"hwc_tensors": 2, "int8_hwc_tensors": 1, "chains": 2, "hwc_chains": 1, "linear_ms": 1.25,
                      "hwc_ms": 1.0}
    settings = script.parse_args(["--channels-last", "on"])
    meta = {"date": "2026-12-05T12:00:00", "gpu": "NVIDIA H200", "versions": {}}
    sanity = {"agreement_inputs": 0, "fp32_top1_vs_pytorch": None, "fp32_distinct_classes": None}
    document = script.result_document(meta, settings, _rows(script), sanity, formats={"int8": record})
    assert document["settings"]["channels_last"] == "on" and document["channels_last"] == {"int8": record}
    markdown = script.format_markdown(document)
    assert ("int8 layouts (channels-last on): 2 NHWC tensors, 1 of them INT8; 1 of 2 chains NHWC (timed: LINEAR "
            "1.250 ms, NHWC 1.000 ms summed)") in markdown
