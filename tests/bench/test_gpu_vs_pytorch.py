"""bench/gpu_vs_pytorch.py: its CPU-safe parts (arguments, ratios, diffs, table/Markdown/JSON, the TF32 switch, the
cold/warm builds and the per-layer profile on a CPU engine), and, where torch and transformers are installed, the
BERT export path on the CPU checked against PyTorch through the engine."""
import json
import os
import signal
import time
from types import SimpleNamespace

import numpy as np
import pytest
from bench_scripts import load_bench_script
from shared_model_cases import MODELS, make_feeds


@pytest.fixture(scope="module")
def script():
    return load_bench_script("gpu_vs_pytorch")


def test_arguments_defaults_quick_and_errors(script, tmp_path):
    settings = script.parse_args([])
    assert settings.models == ["resnet50", "bert"] and settings.batches == [1, 32] and settings.seq == 128
    assert settings.precisions == ["fp32", "fp16"] and settings.compile_precisions == ["fp16"]
    assert (settings.warmup, settings.iterations, settings.opt_level) == (10, 50, 3)
    assert (settings.profile_top, settings.timing_cache, settings.tactic_sources) == (0, None, None)
    quick = script.parse_args(["--quick", "--models", "bert", "--batches", "8,1", "--json", str(tmp_path / "r.json")])
    assert quick.models == ["bert"] and quick.batches == [1, 8] and quick.compile_precisions == []
    assert (quick.warmup, quick.iterations, quick.opt_level) == (3, 10, 1) and quick.json == tmp_path / "r.json"
    assert script.parse_args(["--compile", "fp32,fp16"]).compile_precisions == ["fp32", "fp16"]
    assert script.parse_args(["--compile", "none"]).compile_precisions == []
    assert settings.channels_last is False and script.parse_args(["--channels-last"]).channels_last is True
    assert script.parse_args(["--channels-last", "AUTO", "--quick"]).channels_last == "auto"
    assert script.parse_args(["--channels-last", "off"]).channels_last is False
    for bad in (["--models", "vgg"], ["--batches", "0"], ["--batches", "a"], ["--batches", "64"],
                ["--opt-level", "9"], ["--json", str(tmp_path / "missing" / "r.json")],
                ["--channels-last", "sideways"]):
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
    assert loaded["schema"] == "polyx-gpu-vs-pytorch/2" and loaded["meta"] == meta
    assert loaded["settings"]["tactic_sources"] is None and loaded["profiles"] == []
    assert loaded["settings"]["opt_batch"] == 1 and loaded["rows"][1]["time_vs_eager"] == 0.75
    markdown = (tmp_path / "r.md").read_text()
    assert "- date: 2026-01-02T03:04:05" in markdown and "- GPU: NVIDIA H100 80GB HBM3" in markdown
    assert "| resnet50 | 1 | fp32 | polyx | 3.000 | 0.75x | 1.00e-05 | 2.00e-06 | ok |" in markdown
    assert "| resnet50 | 1 | fp16 | torch.compile | - | - | - | - | failed: TimeoutError: did not finish |" in markdown
    assert "| resnet50 | fp32 | batch 1..1 opt 1 | 12.500 | - | - | 70 | - | ok |" in markdown
    assert "tactic sources all" in markdown and "## Per-layer profile" not in markdown
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


# ----------------------------------------------------------------------------------------------- issue 11
def test_issue11_arguments_tf32_profile_timing_cache_and_tactic_sources(script, tmp_path):
    settings = script.parse_args(["--precisions", "fp32,tf32,fp16", "--compile", "tf32,fp16", "--profile-top", "10",
                                  "--profile-runs", "3", "--timing-cache", str(tmp_path / "bench.cache"),
                                  "--tactic-sources", "cublas", "JIT_convolutions", "CUBLAS"])
    assert settings.precisions == ["fp32", "tf32", "fp16"] and settings.compile_precisions == ["tf32", "fp16"]
    assert (settings.profile_top, settings.profile_runs) == (10, 3)
    assert settings.timing_cache == tmp_path / "bench.cache"
    assert settings.tactic_sources == ["CUBLAS", "JIT_CONVOLUTIONS"]           # the CLI's parser: upper, deduplicated
    assert script.parse_args(["--tactic-sources", "cublas,cudnn"]).tactic_sources == ["CUBLAS", "CUDNN"]
    assert script.parse_args(["--tactic-sources"]).tactic_sources == []        # Polygraphy: no value = no source


@pytest.mark.parametrize("argv, message", [
    (["--tactic-sources", "cuda"], "--tactic-sources 'cuda': unknown tactic source (valid: cublas, cublas_lt"),
    (["--profile-top", "-1"], "--profile-top must be >= 0, got -1"),
    (["--profile-runs", "0"], "--profile-runs must be >= 1, got 0"),
    (["--precisions", "fp32,bf16"], "unknown value(s) bf16 (choose from fp32, tf32, fp16)"),
    (["--timing-cache", "/nonexistent-dir/bench.cache"], "directory '/nonexistent-dir' does not exist"),
])
def test_issue11_argument_errors_name_the_flag(script, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_tf32_switch_is_set_for_the_variant_and_restored_even_on_errors(script):
    backends = SimpleNamespace(cuda=SimpleNamespace(matmul=SimpleNamespace(allow_tf32=False)),
                               cudnn=SimpleNamespace(allow_tf32=False))
    with script.tf32_allowed(backends, True):
        assert backends.cuda.matmul.allow_tf32 is True and backends.cudnn.allow_tf32 is True
    assert backends.cuda.matmul.allow_tf32 is False and backends.cudnn.allow_tf32 is False
    backends.cudnn.allow_tf32 = True                       # restores each switch's own previous value
    with pytest.raises(RuntimeError), script.tf32_allowed(backends, True):
        raise RuntimeError("variant failed")
    assert backends.cuda.matmul.allow_tf32 is False and backends.cudnn.allow_tf32 is True
    with script.tf32_allowed(backends, False):             # fp32 rows: TF32 off whatever was set before
        assert backends.cudnn.allow_tf32 is False
    assert backends.cudnn.allow_tf32 is True


def _issue11_document(script, tmp_path):
    settings = script.parse_args(["--precisions", "tf32", "--batches", "32", "--profile-top", "2",
                                  "--timing-cache", str(tmp_path / "c.cache"), "--tactic-sources", "cublas",
                                  "--markdown", str(tmp_path / "r.md"), "--json", str(tmp_path / "r.json")])
    meta = {"date": "2026-12-05T12:00:00", "gpu": "NVIDIA H100 80GB HBM3", "versions": {"torch": "2.11.0"}}
    rows = [script.row("bert", 32, "tf32", script.EAGER, median_ms=8.0, samples=50, diffs=(1e-3, 2e-4)),
            script.row("bert", 32, "tf32", "polyx + CUDA graph", median_ms=6.0, samples=50, diffs=(2e-3, 3e-4))]
    builds = [{"model": "bert", "precision": "tf32", "profile": "batch 32..32 opt 32", "seconds": 41.25,
               "device_layers": 358, "status": "ok", "layers_by_source": {"CUBLAS": 98, "none": 260},
               "warm_seconds": 3.5, "warm_status": "ok", "warm_cache_hits": 120, "warm_cache_misses": 0,
               "warm_same_tactics": True},
              {"model": "resnet50", "precision": "tf32", "profile": "batch 32..32 opt 32", "seconds": 30.0,
               "device_layers": 59, "status": "ok", "layers_by_source": {"JIT_CONVOLUTIONS": 59},
               "warm_seconds": None, "warm_status": "failed: PlanFormatError: timing cache: bad | entry"}]
    profiles = [{"model": "bert", "precision": "tf32", "batch": 32, "profile": "batch 32..32 opt 32", "status": "ok",
                 "runs": 5, "layers": 3, "total_ms": 4.0,
                 "top": [{"name": "attn|qkv", "type": "MATRIX_MULTIPLY", "tactic": "gpu:matmul:cublas_gemm_tf32",
                          "source": "CUBLAS", "median_ms": 2.5, "share": 0.625},
                         {"name": "ln_0", "type": "NORMALIZATION", "tactic": "gpu:norm", "source": None,
                          "median_ms": 1.0, "share": 0.25}],
                 "by_type": [{"type": "MATRIX_MULTIPLY", "layers": 1, "median_ms": 2.5, "share": 0.625},
                             {"type": "NORMALIZATION", "layers": 2, "median_ms": 1.5, "share": 0.375}]},
                {"model": "resnet50", "precision": "tf32", "batch": 32, "profile": "batch 32..32 opt 32",
                 "status": "failed: ExecutionError: layer 'conv1': out of memory"}]
    return settings, script.result_document(meta, settings, rows, builds, profiles)


def test_issue11_markdown_builds_table_and_profile_section(script, tmp_path):
    settings, document = _issue11_document(script, tmp_path)
    script.write_outputs(document, settings)
    lines = (tmp_path / "r.md").read_text().splitlines()
    assert any("fp32 with TF32 off and tf32 with TF32 allowed" in line and "tactic sources cublas" in line
               for line in lines)
    assert "| bert | 32 | tf32 | polyx + CUDA graph | 6.000 | 0.75x | 2.00e-03 | 3.00e-04 | ok |" in lines
    header = ("| model | precision | profile | build s | warm build s | warm cache | device layers "
              "| layers by tactic source | status |")
    assert lines[lines.index(header) + 2:lines.index(header) + 4] == [
        "| bert | tf32 | batch 32..32 opt 32 | 41.250 | 3.500 | 120 hits, 0 misses, same tactics | 358 "
        "| CUBLAS 98, none 260 | ok |",
        "| resnet50 | tf32 | batch 32..32 opt 32 | 30.000 | failed: PlanFormatError: timing cache: bad \\| entry | - "
        "| 59 | JIT_CONVOLUTIONS 59 | ok |"]
    section = lines[lines.index("## Per-layer profile"):]
    assert "### bert tf32 batch 32: 5 profiled runs, 4.000 ms summed over 3 layers" in section
    assert section[section.index("| # | layer | type | tactic | source | median ms | share |") + 2:][:2] == [
        "| 1 | attn\\|qkv | MATRIX_MULTIPLY | gpu:matmul:cublas_gemm_tf32 | CUBLAS | 2.5000 | 62.5% |",
        "| 2 | ln_0 | NORMALIZATION | gpu:norm | - | 1.0000 | 25.0% |"]
    assert "| NORMALIZATION | 2 | 1.5000 | 37.5% |" in section
    assert "### resnet50 tf32 batch 32: failed: ExecutionError: layer 'conv1': out of memory" in section
    assert not any("interrupted" in line for line in lines)
    document["meta"]["interrupted"] = "signal SIGTERM: stopped early"
    assert "- **interrupted**: signal SIGTERM: stopped early" in script.format_markdown(document).splitlines()


def test_sigterm_gets_past_the_per_variant_handlers_and_the_handler_is_restored(script):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(script.Interrupted, match="signal SIGTERM"), script.stop_on_sigterm():
        try:                                               # what Benchmark.measure does around one variant
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)                                  # the handler raises long before this ends
        except Exception:  # noqa: BLE001
            pytest.fail("a per-variant `except Exception` caught the interruption")
    assert signal.getsignal(signal.SIGTERM) is before


def test_issue11_json_keeps_settings_builds_and_profiles(script, tmp_path):
    settings, document = _issue11_document(script, tmp_path)
    script.write_outputs(document, settings)
    loaded = json.loads((tmp_path / "r.json").read_text())
    assert loaded["settings"]["precisions"] == ["tf32"] and loaded["settings"]["tactic_sources"] == ["CUBLAS"]
    assert loaded["settings"]["profile_top"] == 2 and loaded["settings"]["timing_cache"] == str(tmp_path / "c.cache")
    assert loaded["builds"][0]["warm_seconds"] == 3.5 and loaded["builds"][0]["layers_by_source"]["CUBLAS"] == 98
    assert loaded["profiles"][0]["top"][0]["share"] == 0.625 and loaded["profiles"][1]["status"].startswith("failed")
    assert loaded["rows"][1]["time_vs_eager"] == 0.75


BERT_TINY = MODELS / "bert_tiny.onnx"
needs_bert_tiny = pytest.mark.skipif(not BERT_TINY.is_file(), reason=f"{BERT_TINY} missing")


def _bert_tiny_options(batch: int, **extra):
    from polyx.build import BuildOptions

    extra.setdefault("device", "cpu")
    return BuildOptions(input_shapes={"input_ids": (batch, 8), "attention_mask": (batch, 8)}, **extra)


@needs_bert_tiny
def test_cpu_engine_profile_names_the_engines_layers_and_shares_sum_to_one(script):
    import onnx

    from polyx.bench import create_workers
    from polyx.build import build_engine

    engine, _, _ = build_engine(BERT_TINY, _bert_tiny_options(2, optimization_level=0))
    feeds = make_feeds(onnx.load(str(BERT_TINY), load_external_data=False), {"input_ids": (2, 8),
                                                                             "attention_mask": (2, 8)}, seed=3)
    worker = create_workers(engine, feeds, 1)[0]
    worker.run_once()                                       # warm-up, as the script's timing does before profiling
    profile = script.profile_engine(engine, worker, runs=3, top=4)
    device = {row["name"]: row for row in engine.layer_info() if not row["host"]}
    assert profile["status"] == "ok" and profile["runs"] == 3 and profile["layers"] == len(device)
    assert len(profile["top"]) == 4
    medians = [layer["median_ms"] for layer in profile["top"]]
    assert medians == sorted(medians, reverse=True) and medians[0] > 0
    for layer in profile["top"]:
        assert layer["name"] in device, f"profiled layer {layer['name']} is not a device layer of the engine"
        assert (layer["type"], layer["tactic"]) == (device[layer["name"]]["type"], device[layer["name"]]["tactic"])
        assert layer["source"] is None                      # CPU tactics have no TacticSource
        assert layer["share"] == pytest.approx(layer["median_ms"] / profile["total_ms"])
    assert sum(t["layers"] for t in profile["by_type"]) == len(device)
    assert sum(t["share"] for t in profile["by_type"]) == pytest.approx(1.0)
    assert sum(t["median_ms"] for t in profile["by_type"]) == pytest.approx(profile["total_ms"])
    assert {t["type"] for t in profile["by_type"]} == {row["type"] for row in device.values()}
    lines = script.format_profiles_markdown([{"model": "bert_tiny", "precision": "fp32", "batch": 2, **profile}])
    assert f"| 1 | {profile['top'][0]['name']} | {profile['top'][0]['type']} |" in "\n".join(lines)


@needs_bert_tiny
def test_cold_builds_fill_the_cache_file_and_warm_rebuilds_time_nothing(script, tmp_path):
    import engine as trt

    cache_file = tmp_path / "bench.cache"
    cache_file.write_bytes(b"left over from another run")  # replaced, never read: the cold build stays cold
    builds = script.EngineBuilds(cache_file)
    first_engine, first = builds.build(BERT_TINY, _bert_tiny_options(1, optimization_level=1))
    after_first = len(trt.TimingCache.deserialize(cache_file.read_bytes()))
    _, second = builds.build(BERT_TINY, _bert_tiny_options(3, optimization_level=1))
    device_layers = sum(1 for row in first_engine.layer_info() if not row["host"])
    for record in (first, second):
        assert record["status"] == "ok" and record["warm_status"] == "ok" and record["seconds"] > 0
        assert record["warm_seconds"] > 0 and record["warm_same_tactics"] is True
        assert record["warm_cache_misses"] == 0 and record["warm_cache_hits"] > 0, \
            f"a warm rebuild timed layers again: {record}"
    assert first["device_layers"] == device_layers and first["layers_by_source"] == {"none": device_layers}
    final = trt.TimingCache.deserialize(cache_file.read_bytes())
    assert after_first > 0 and len(final) > after_first     # batch 3's layers added to batch 1's


@needs_bert_tiny
def test_no_cache_file_reports_no_warm_build_and_tactic_sources_reach_the_builder(script):
    _, record = script.EngineBuilds(None).build(BERT_TINY, _bert_tiny_options(1, optimization_level=0,
                                                                              tactic_sources=[]))
    assert "warm_seconds" not in record and record["status"] == "ok"
    assert record["layers_by_source"] == {"none": record["device_layers"]}  # CPU kernels need no source


@pytest.mark.gpu
@needs_bert_tiny
def test_gpu_tf32_engine_builds_warm_from_the_cache_and_profiles_its_layers(script, tmp_path):
    pytest.importorskip("cupy")
    import onnx

    from engine import TacticSource
    from polyx.bench import create_workers

    options = _bert_tiny_options(4, optimization_level=1, tf32=True, device="gpu")
    engine, record = script.EngineBuilds(tmp_path / "gpu.cache").build(BERT_TINY, options)
    assert record["warm_status"] == "ok" and record["warm_cache_misses"] == 0 and record["warm_same_tactics"], \
        f"the warm GPU rebuild timed layers again or chose other tactics: {record}"
    counts = record["layers_by_source"]
    assert sum(counts.values()) == record["device_layers"]
    assert set(counts) <= {"none", *TacticSource.__members__}, f"unexpected source names: {counts}"
    feeds = make_feeds(onnx.load(str(BERT_TINY), load_external_data=False), {"input_ids": (4, 8),
                                                                             "attention_mask": (4, 8)}, seed=5)
    worker = create_workers(engine, feeds, 1)[0]
    worker.run_once()
    profile = script.profile_engine(engine, worker, runs=3, top=5)
    device = {row["name"]: row for row in engine.layer_info() if not row["host"]}
    assert profile["layers"] == len(device) and len(profile["top"]) == 5
    assert sum(t["share"] for t in profile["by_type"]) == pytest.approx(1.0)
    for layer in profile["top"]:
        assert layer["name"] in device and layer["tactic"] == device[layer["name"]]["tactic"]


@pytest.mark.gpu
@needs_bert_tiny
def test_gpu_build_with_no_tactic_source_falls_back_to_kernels_of_no_source(script):
    pytest.importorskip("cupy")
    options = _bert_tiny_options(2, optimization_level=1, tactic_sources=[], device="gpu")
    _, record = script.EngineBuilds(None).build(BERT_TINY, options)
    assert record["layers_by_source"] == {"none": record["device_layers"]}, \
        f"a layer kept a tactic of a disabled source: {record['layers_by_source']}"


@pytest.mark.skipif(not (MODELS / "mobilenet_v2.onnx").is_file(), reason="shared model mobilenet_v2 is missing")
def test_a_channels_last_auto_build_records_its_chains_and_the_markdown_says_so(script):
    """The record sums the plan's timed chains (engine/channels_last_choice.py) and counts those built HWC."""
    from polyx.build import BuildOptions

    options = BuildOptions(input_shapes={"input": (1, 3, 224, 224)}, device="cpu", optimization_level=1,
                           channels_last="auto")
    engine, record = script.EngineBuilds(None).build(MODELS / "mobilenet_v2.onnx", options)
    chains = engine.meta["channels_last"]["chains"]
    assert chains and record["channels_last"] == {
        "chains": len(chains), "hwc": sum(c["hwc"] for c in chains),
        "linear_ms": pytest.approx(sum(c["linear_ms"] for c in chains)),
        "hwc_ms": pytest.approx(sum(c["hwc_ms"] for c in chains))}
    hwc_tensors = sum(t.format.value == "HWC" for t in engine.graph.tensors)
    assert (hwc_tensors > 0) == (record["channels_last"]["hwc"] > 0)
    line = next(line for line in script.format_builds_markdown([{"model": "mobilenet_v2", "precision": "fp32",
                                                                  **record}]) if "channels-last auto" in line)
    assert line.startswith(f"- mobilenet_v2 fp32 (-): channels-last auto, {record['channels_last']['hwc']} of "
                           f"{len(chains)} convolution chains HWC")
