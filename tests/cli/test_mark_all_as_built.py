"""`--mark-all` compares the engine as built: provenance of every ONNX tensor, streamed comparison in chunks,
the first failing engine layer, per-tensor pictures, and the errors. References: the float64 NumPy model in
fused_block_model.py and onnxruntime."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_test_models import run_cli
from fused_block_model import fused_block_model, reference_tensors

import engine as trt
from engine.tactics import tactics_for, unregister_tactic
from polyx.build import BuildOptions
from polyx.compare.comparator import TensorComparison
from polyx.compare.engine_provenance import engine_provenance
from polyx.compare.plot_options import PlotOptions
from polyx.errors import PolyxError
from polyx.report.tensor_plots import error_metrics_svg, heatmap_svg
from polyx.run_session import RunOptions, run_session

FAST = ["--builder-optimization-level", "0", "--device", "cpu"]
BOUNDARY = ["relu1_out", "pool_out", "relu2_out", "flat_out", "y"]


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "fused_block.onnx"
    onnx.save(fused_block_model(), path)
    return path


def _options(path, **kwargs) -> RunOptions:
    return RunOptions(model=path, use_engine=True, use_onnxrt=True, compare_engine_layers=True,
                      build=BuildOptions(optimization_level=0, device="cpu"), **kwargs)


class _ScaledPool(trt.Tactic):
    """The pooling layer's correct tactic, its output scaled by 1.01: an error created in one known layer."""

    name, layer_type, heuristic_rank = "test_scaled_pool", trt.LayerType.POOLING, -1

    def __init__(self):
        self.correct = min((t for t in tactics_for(trt.LayerType.POOLING, "cpu") if not t.runs_int8),
                           key=lambda t: t.heuristic_rank)

    def prepare(self, ctx):
        return self.correct.prepare(ctx)

    def run(self, state, inputs, outputs, workspace, xp):
        self.correct.run(state, inputs, outputs, workspace, xp)
        outputs[0] *= 1.01


@pytest.fixture
def scaled_pool():
    tactic = trt.register_tactic(_ScaledPool())
    yield tactic
    unregister_tactic(tactic)


def test_every_onnx_tensor_is_placed_in_the_engine_as_built(model_path):
    result = run_session(_options(model_path))
    placements = result.engine_layers.provenance.placements
    where = {name: (p.where, p.layer, p.compared_at) for name, p in placements.items()}
    assert where == {
        "conv1_out": ("fused", "conv1", "relu1_out"), "bn_out": ("fused", "conv1", "relu1_out"),
        "relu1_out": ("boundary", "conv1", "relu1_out"), "pool_out": ("boundary", "pool", "pool_out"),
        "conv2_out": ("fused", "conv2", "relu2_out"), "add_out": ("fused", "conv2", "relu2_out"),
        "relu2_out": ("boundary", "conv2", "relu2_out"), "same_out": ("removed", None, None),
        "flat_out": ("boundary", "flatten", "flat_out"), "y": ("boundary", "fc", "y")}
    labels = {g.name: g.label for g in result.engine_layers.provenance.layers}
    assert labels == {"conv1": "conv+bn+relu", "pool": "", "conv2": "conv+add+relu", "flatten": "", "fc": ""}
    assert [c.name for c in result.comparisons] == ["y", *BOUNDARY[:-1]] and result.passed


def test_error_created_in_one_layer_is_named_with_its_size(model_path, scaled_pool):
    result = run_session(_options(model_path))  # the wrong pooling tactic is preferred: heuristic rank -1
    report = result.engine_layers
    assert report.first_failing.group.name == "pool" and report.first_failing.group.tactic == "test_scaled_pool"
    assert report.error_created_in_first_failing
    assert [i.name for i in report.first_failing_inputs] == ["relu1_out"]
    assert [layer.group.name for layer in report.layers if layer.passed] == ["conv1"]
    expected = reference_tensors(result.feeds[0]["x"])["pool_out"]
    pool = next(c for c in result.comparisons if c.name == "pool_out")
    assert pool.max_absolute == pytest.approx(0.01 * np.abs(expected).max(), rel=1e-3)


def test_fail_fast_stops_the_layer_comparison_at_the_first_failing_layer(model_path, scaled_pool):
    result = run_session(_options(model_path, iterations=2, fail_fast=True, intermediate_budget_bytes=1))
    # y (the model output) fails first; then relu1_out passes and pool_out fails: nothing after it is compared
    assert [(c.name, c.iteration, c.passed) for c in result.comparisons] == [
        ("y", 0, False), ("relu1_out", 0, True), ("pool_out", 0, False)]
    assert result.engine_layers.first_failing.group.name == "pool"
    assert any("--fail-fast" in note for note in result.notes)


def test_streaming_in_small_chunks_holds_little_and_gives_the_same_verdicts(model_path):
    whole = run_session(_options(model_path, iterations=2))
    streamed = run_session(_options(model_path, iterations=2, intermediate_budget_bytes=1))
    intermediates = len(BOUNDARY) - 1  # the model output y is compared with the outputs
    assert whole.stream_stats.chunks == 1 and whole.stream_stats.engine_runs == 2
    assert streamed.stream_stats.chunks == intermediates
    assert streamed.stream_stats.engine_runs == streamed.stream_stats.onnxrt_runs == 2 * intermediates
    largest = 2 * 4 * 8 * 8 * 4  # relu1_out, float32
    assert streamed.stream_stats.peak_held_bytes <= 2 * largest < whole.stream_stats.peak_held_bytes

    def key(c: TensorComparison):
        return c.name, c.iteration, c.max_absolute, c.passed

    assert sorted(map(key, whole.comparisons)) == sorted(map(key, streamed.comparisons))


def test_onnxruntime_reads_external_data_from_the_model_folder(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(fused_block_model(), folder / "m.onnx", save_as_external_data=True, location="m.weights",
              size_threshold=0)
    assert onnx.load(folder / "m.onnx", load_external_data=False).ByteSize() < 3000  # the weights are outside
    monkeypatch.chdir(tmp_path)  # not the model's folder
    result = run_session(_options(folder / "m.onnx"))
    assert result.passed and len(result.comparisons) == len(BOUNDARY)
    legacy = RunOptions(model=folder / "m.onnx", use_engine=True, use_onnxrt=True, onnx_mark_all=True,
                        build=BuildOptions(optimization_level=0, device="cpu", mark_all=True))
    result = run_session(legacy)  # Polygraphy's mark-all: onnxruntime from the weightless graph too
    assert result.passed and len(result.comparisons) == len(fused_block_model().graph.node)  # every node output



def test_int8_engine_names_its_first_int8_layer_over_tolerance(capsys, model_path):
    """conv1 stays FP32, so pooling passes and the first INT8 layer (conv2) is where the error starts."""
    code, out, err = run_cli(capsys, "run", model_path, "--engine", "--onnxrt", "--mark-all", "--int8",
                             "--layer-precisions", "conv1:fp32", *FAST)
    assert code == 1, out + err
    assert re.search(r"^First failing engine layer: conv2 \(CONVOLUTION conv\+add\+relu, INT8, tactic \S+\) output "
                     r"'relu2_out'", out, re.M)
    assert "input 'pool_out': max abs error" in out and "(within tolerance)" in out


def test_implicit_int8_layer_outputs_are_compared_dequantized(capsys, tmp_path):
    """Calibrated INT8 layers store their result as INT8 under a new name: it is compared with onnxruntime's
    float tensor after multiplying by the layer's scale, so the first (INT8) convolution is the one named."""
    model = Path(__file__).resolve().parents[2] / "examples" / "models" / "cnn.onnx"
    code, out, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", "--mark-all", "--int8", *FAST)
    assert code == 1, out + err
    assert re.search(r"^First failing engine layer: stem \(CONVOLUTION conv\+bn\+relu, INT8, tactic \S+\) output "
                     r"'stem_relu' max abs error ([0-9.e-]+)", out, re.M)
    stored = int(re.search(r"(\d+) stored as INT8 \(compared dequantized\)", out).group(1))
    assert stored >= 2 and "every input is within tolerance: the error is created in this layer" in out
    code, out, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", "--mark-all", "--int8", *FAST,
                             "--atol", "0.1", "--rtol", "0.1")
    assert code == 0, out  # dequantized INT8 values are close to the float ones: the scale was applied


def test_build_summary_is_identical_with_and_without_mark_all(capsys, model_path):
    def summary(*extra: str) -> list[str]:
        return _build_summary(capsys, model_path, "--engine", "--onnxrt", *FAST, *extra)

    plain, marked = summary(), summary("--mark-all")
    assert plain == marked and any("conv_scale_fusion" in line for line in plain)
    legacy = summary("--mark-all-outputs")  # Polygraphy's mark-all changes the engine
    assert legacy != plain and any(re.match(r"  marked \d+ intermediate tensor\(s\)", line) for line in legacy)


def test_pictures_are_written_per_compared_tensor(capsys, tmp_path, model_path):
    heat, metrics = tmp_path / "heat", tmp_path / "metrics"
    code, out, _ = run_cli(capsys, "run", model_path, "--engine", "--onnxrt", "--mark-all", *FAST,
                           "--save-heatmaps", heat, "--save-error-metrics-plot", metrics)
    assert code == 0
    expected = sorted(f"{name}_iter0.svg" for name in BOUNDARY)
    assert sorted(p.name for p in heat.iterdir()) == expected == sorted(p.name for p in metrics.iterdir())
    for path in [*heat.iterdir(), *metrics.iterdir()]:
        ET.parse(path)  # well-formed SVG


def _comparison(shape) -> TensorComparison:
    return TensorComparison(name="t/x:0", iteration=1, reference_runner="a", candidate_runner="b",
                            reference_shape=shape, candidate_shape=shape, reference_dtype="float32",
                            candidate_dtype="float32", atol=1e-3, rtol=1e-3, check_error_stat="elemwise",
                            passed=False)


def test_heatmap_pools_to_64_cells_and_marks_the_one_wrong_element():
    reference = np.ones((128, 128))
    absolute = np.zeros((128, 128))
    absolute[100, 3] = 0.5
    svg = heatmap_svg(_comparison((128, 128)), absolute, absolute / reference)
    cells = re.findall(r"<rect x='\d+' y='\d+' width='6' height='6' fill='(#[0-9a-f]{6})'/>", svg)
    assert len(cells) == 2 * 64 * 64
    assert [i for i, c in enumerate(cells[:4096]) if c != "#ffffff"] == [50 * 64 + 1]  # row 100//2, column 3//2


def test_heatmap_of_extreme_and_infinite_errors_is_written():
    relative = np.array([[0.0, 1e300, np.inf, np.nan]])
    svg = heatmap_svg(_comparison((1, 4)), relative, relative)
    ET.fromstring(svg)
    assert "0 .. 1e+300 (black: inf/NaN)" in svg and svg.count("fill='#000000'") == 4


def test_error_metrics_plot_counts_elements_per_decade():
    absolute = np.array([0.0, 2e-4, 3e-4, 5e-3, 0.2])
    svg = error_metrics_svg(_comparison((5,)), absolute, absolute)
    counts = [int(n) for n in re.findall(r"<title>(\d+) element\(s\) in", svg)]
    # decades [1e-4,1e-3), [1e-3,1e-2), [1e-2,1e-1), [1e-1,1) of the absolute error, then the same for relative;
    # the zero is not on a log axis
    assert counts == [2, 1, 0, 1] * 2


@pytest.mark.parametrize("args, message", [
    (["--engine", "--mark-all"], "run an ONNX model with both --engine and --onnxrt"),
    (["--engine", "--onnxrt", "--mark-all", "--mark-all-outputs"], "exclude each other"),
    (["--engine", "--onnxrt", "--mark-all", "--mark-all-budget", "lots"], "--mark-all-budget 'lots'"),
    (["--engine", "--onnxrt", "--mark-all", "--mark-all-budget", "0"], "--mark-all-budget must be > 0"),
    (["--onnxrt", "--save-heatmaps", "{file}"], "--save-heatmaps"),
])
def test_bad_mark_all_options_are_one_line_errors(capsys, tmp_path, model_path, args, message):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    args = [str(a_file) if a == "{file}" else a for a in args]
    code, out, err = run_cli(capsys, "run", model_path, *FAST, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_heatmap_folder_that_is_a_file_is_refused(tmp_path, model_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(PolyxError, match="is a file; expected a folder"):
        run_session(_options(model_path, plots=PlotOptions(heatmaps=a_file)))


def test_provenance_of_a_node_lowered_to_several_layers_and_of_unnamed_nodes():
    model = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["r"]), onnx.helper.make_node("Neg", ["r"], ["y"], name="a/b")], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])]))
    rows = [{"name": "Relu_0", "type": "ACTIVATION", "precision": "FLOAT", "fused_from": [], "inputs": ["x"],
             "outputs": ["r"]},
            {"name": "a/b/1", "type": "UNARY", "precision": "FLOAT", "fused_from": [], "inputs": ["r"],
             "outputs": ["a/b/1_out"]},
            {"name": "a/b", "type": "UNARY", "precision": "FLOAT", "fused_from": [], "inputs": ["a/b/1_out"],
             "outputs": ["y"]}]
    provenance = engine_provenance(model, rows)
    assert [g.onnx_nodes for g in provenance.layers] == [["Relu_0"], ["a/b"], ["a/b"]]
    assert provenance.engine_only == ["a/b/1_out"]
    assert {n: p.where for n, p in provenance.placements.items()} == {"r": "boundary", "y": "boundary"}


def test_a_saved_plan_is_compared_as_built(capsys, tmp_path, model_path):
    plan = tmp_path / "m.plan"
    assert run_cli(capsys, "convert", model_path, "-o", plan, *FAST)[0] == 0
    code, out, err = run_cli(capsys, "run", model_path, "--engine", "--onnxrt", "--mark-all", "--load-engine", plan)
    assert code == 0, out + err
    assert "Inside fused layer conv2 (conv+add+relu): conv2_out, add_out (compared at relu2_out: PASSED" in out
    assert "Removed by the builder (no layer computes them): same_out" in out


def _build_summary(capsys, *args: str) -> list[str]:
    code, out, err = run_cli(capsys, "run", *args, "-v")
    assert code == 0, out + err
    lines = out.splitlines()
    start = lines.index("Build summary:")
    block = lines[start:next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("  "))]
    return [re.sub(r"(build time|timing cache): .*", r"\1: (varies)", line) for line in block]


@pytest.mark.gpu
def test_gpu_build_summary_is_identical_with_and_without_mark_all(capsys, tmp_path, model_path):
    """Same timings (one timing cache), so the same tactics: --mark-all must not change the GPU engine."""
    common = [model_path, "--engine", "--onnxrt", "--device", "gpu", "--fp16", "--atol", "1e-2", "--rtol", "1e-2",
              "--timing-cache", tmp_path / "gpu.cache"]
    plain = _build_summary(capsys, *common)
    assert _build_summary(capsys, *common, "--mark-all") == plain


@pytest.mark.gpu
def test_gpu_engine_as_built_compares_every_layer_boundary(capsys, model_path):
    code, out, err = run_cli(capsys, "run", model_path, "--engine", "--onnxrt", "--mark-all", "--device", "gpu",
                             "--atol", "1e-4", "--rtol", "1e-4")
    assert code == 0, out + err
    assert "Inside fused layer conv1 (conv+bn+relu): conv1_out, bn_out (compared at relu1_out: PASSED" in out
    assert "First failing engine layer: none" in out
