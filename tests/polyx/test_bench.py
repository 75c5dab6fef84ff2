"""polyx.bench: the timing loop, statistics, multi-stream runs and the JSON result, on the CPU engine."""
import json
import threading
import time

import numpy as np
import onnxruntime as ort
import pytest
from fc_model import write_fc_tanh_model
from shared_model_cases import MODELS

from polyx.bench import (
    BenchOptions,
    IterationTimes,
    TimingSettings,
    format_bench_result,
    format_layer_table,
    run_bench,
    summarize,
    time_workers,
)
from polyx.build import BuildOptions
from polyx.data.loader import DataLoader
from polyx.errors import PolyxError

SHARED_MODELS = MODELS  # ../shared/models, or POLYX_MODELS_DIR
RNG = np.random.default_rng(3)
W = RNG.standard_normal((6, 5)).astype(np.float32)
B = RNG.standard_normal(5).astype(np.float32)


@pytest.fixture
def model_path(tmp_path):
    return write_fc_tanh_model(tmp_path / "fc.onnx", W, B)


def _build(**kwargs):
    return BuildOptions(optimization_level=0, device="cpu", **kwargs)


class SleepWorker:
    """Fake worker: each run sleeps `ms`, and every call is counted (warm-up included)."""

    def __init__(self, ms: float):
        self.ms = ms
        self.calls = 0

    def run_once(self) -> IterationTimes:
        self.calls += 1
        time.sleep(self.ms / 1e3)
        return IterationTimes(latency_ms=self.ms, enqueue_ms=self.ms, compute_ms=self.ms)


def test_summarize_matches_hand_computed_percentiles():
    stats = summarize([float(v) for v in range(100, 0, -1)])  # 1..100 in any order
    # linear interpolation at rank p/100 * (n - 1): median 50.5, p90 at rank 89.1 -> 90.1, p99 at 98.01 -> 99.01
    assert stats == pytest.approx({"min": 1.0, "mean": 50.5, "median": 50.5, "p90": 90.1, "p99": 99.01,
                                   "max": 100.0})
    assert summarize([]) == dict.fromkeys(("min", "mean", "median", "p90", "p99", "max"), 0.0)


def test_iterations_only_run_exactly_the_minimum_after_warm_up():
    worker = SleepWorker(1.0)
    run = time_workers([worker], TimingSettings(warmup_ms=20, min_iterations=7, duration_s=0))
    stream = run.streams[0]
    assert len(run.iterations) == 7
    assert stream.warmup_runs >= 2 and stream.warmup_ms >= 20   # 20 ms of 1 ms runs, the loop overhead aside
    assert worker.calls == stream.warmup_runs + 7               # warm-up runs are never timed


def test_duration_bounds_the_run():
    worker = SleepWorker(2.0)
    start = time.perf_counter()
    run = time_workers([worker], TimingSettings(warmup_ms=0, min_iterations=1, duration_s=0.3))
    elapsed = time.perf_counter() - start
    assert 0.3 <= run.wall_seconds < 0.3 + 0.1
    assert elapsed < 0.6
    assert 30 <= len(run.iterations) <= 151                     # sleeps never end early: <= 0.3 s / 2 ms + 1


def test_streams_start_together_and_are_counted_separately():
    workers = [SleepWorker(1.0), SleepWorker(3.0)]
    run = time_workers(workers, TimingSettings(warmup_ms=5, min_iterations=4, duration_s=0.1))
    assert len(run.streams) == 2
    fast, slow = (len(s.iterations) for s in run.streams)
    assert fast > slow >= 4 and len(run.iterations) == fast + slow
    assert run.wall_seconds >= 0.1


def test_a_failing_worker_raises_instead_of_hanging():
    class Broken:
        def run_once(self):
            raise RuntimeError("kernel exploded")

    raised = []

    def bench() -> None:
        try:
            time_workers([SleepWorker(1.0), Broken()], TimingSettings(warmup_ms=10, min_iterations=2, duration_s=0))
        except RuntimeError as exc:
            raised.append(str(exc))

    thread = threading.Thread(target=bench)
    thread.start()
    thread.join(timeout=10)
    assert raised == ["kernel exploded"]


def test_timing_settings_are_validated():
    for settings, flag in [(TimingSettings(warmup_ms=-1), "--warmup"), (TimingSettings(min_iterations=0),
                                                                         "--iterations"),
                           (TimingSettings(duration_s=-0.5), "--duration")]:
        with pytest.raises(PolyxError, match=flag):
            settings.validate()


def test_two_streams_both_run_and_match_onnxruntime(model_path):
    options = BenchOptions(model=model_path, build=_build(input_shapes={"x": (3, 6)}),
                           timing=TimingSettings(warmup_ms=5, min_iterations=5, duration_s=0.05), streams=2)
    result = run_bench(options)
    assert result.streams == 2 and len(result.timed.streams) == 2
    assert all(len(s.iterations) >= 5 for s in result.timed.streams)
    x = next(iter(DataLoader({"x": ((-1, 6), np.float32)}, seed=1, shapes={"x": (3, 6)})))["x"]
    expected = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(result.feeds["x"], x)
    assert len(result.outputs) == 2
    for outputs in result.outputs:
        np.testing.assert_allclose(outputs["y"], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(outputs["y"], np.tanh(x.astype(np.float64) @ W + B), rtol=1e-5, atol=1e-6)


def test_json_result_schema_and_consistency(model_path):
    options = BenchOptions(model=model_path, build=_build(input_shapes={"x": (4, 6)}),
                           timing=TimingSettings(warmup_ms=0, min_iterations=12, duration_s=0))
    doc = json.loads(json.dumps(run_bench(options).to_json()))
    assert doc["schema"] == "polyx-bench/1" and doc["device"] == "cpu" and doc["precision"] == "fp32"
    assert doc["inputs"] == {"x": {"shape": [4, 6], "dtype": "float32"}} and doc["batch"] == 4
    assert doc["runs"] == 12 and doc["runs_per_stream"] == [12]
    assert doc["settings"] == {"warmup_ms": 0, "min_iterations": 12, "duration_s": 0, "streams": 1,
                               "use_cuda_graph": False, "data_transfers": True}
    assert doc["throughput"]["qps"] == pytest.approx(12 / doc["total_seconds"])
    assert doc["throughput"]["inferences_per_second"] == pytest.approx(4 * doc["throughput"]["qps"])
    latency = doc["latency_ms"]
    assert 0 < latency["min"] <= latency["median"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert latency["min"] <= latency["mean"] <= latency["max"]
    # sequential iterations cannot take longer in total than the wall-clock span of the run
    assert 12 * latency["mean"] <= doc["total_seconds"] * 1e3
    assert doc["h2d_ms"]["max"] == 0 and doc["d2h_ms"]["max"] == 0          # CPU: no transfers
    assert doc["compute_ms"] == latency and doc["enqueue_ms"] == latency   # CPU: synchronous
    assert doc["build"]["device_layers"] == 1 and doc["layer_profile"] is None  # bias and tanh fused into fc
    assert any("H2D and D2H are 0" in note for note in doc["notes"])


def test_layer_profile_covers_every_device_layer(model_path, tmp_path):
    path = tmp_path / "layers.json"
    options = BenchOptions(model=model_path, build=_build(), export_profile=path,
                           timing=TimingSettings(warmup_ms=0, min_iterations=4, duration_s=0))
    result = run_bench(options)
    doc = json.loads(path.read_text())
    names = [row["name"] for row in result.engine.layer_info() if not row["host"]]
    assert doc["schema"] == "polyx-layer-profile/1" and doc["runs"] == 4
    assert [layer["name"] for layer in doc["layers"]] == names             # execution order
    assert sum(layer["percentage"] for layer in doc["layers"]) == pytest.approx(100.0)
    for layer in doc["layers"]:
        assert layer["total_ms"] == pytest.approx(4 * layer["average_ms"]) and layer["tactic"]
        assert layer["source"] is None                                     # CPU tactics have no TacticSource
    table = format_layer_table(result.profile)
    averages = [float(line.split()[-3]) for line in table[2:]]
    assert averages == sorted(averages, reverse=True) and len(averages) == len(names)


def test_text_summary_names_the_numbers(model_path):
    result = run_bench(BenchOptions(model=model_path, build=_build(),
                                    timing=TimingSettings(warmup_ms=0, min_iterations=3, duration_s=0)))
    text = "\n".join(format_bench_result(result))
    assert f"Timed runs: {result.runs} in" in text and "qps" in text and "inferences/s (batch 1)" in text
    for label in ("Latency (ms)", "Enqueue (ms)", "H2D (ms)", "Compute (ms)", "D2H (ms)"):
        assert label in text


def test_cuda_graph_on_cpu_is_refused_before_building(model_path):
    options = BenchOptions(model=model_path, build=_build(), use_cuda_graph=True)
    with pytest.raises(PolyxError, match="--use-cuda-graph needs a GPU engine"):
        run_bench(options)


def test_bert_tiny_two_int_inputs_match_onnxruntime():
    path = SHARED_MODELS / "bert_tiny.onnx"
    if not path.is_file():
        pytest.skip(f"shared model {path} is not available")
    shapes = {"input_ids": (2, 16), "attention_mask": (2, 16)}
    options = BenchOptions(model=path, build=_build(input_shapes=shapes), streams=2,
                           timing=TimingSettings(warmup_ms=0, min_iterations=2, duration_s=0))
    result = run_bench(options)
    assert result.batch == 2 and all(a.dtype == np.int64 for a in result.feeds.values())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    expected = dict(zip(names, session.run(None, result.feeds)))
    for outputs in result.outputs:
        for name in names:
            np.testing.assert_allclose(outputs[name], expected[name], rtol=1e-4, atol=1e-4)
