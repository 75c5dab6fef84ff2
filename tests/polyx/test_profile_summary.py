"""polyx.bench.profile_summary (top layers and type shares of a layer profile) and polyx.bench.tactic_sources
(device layers per tactic source), on hand-made profiles and layer rows with hand-computed answers."""
import pytest

from engine.enums import LayerType
from engine.tactics.catalog import tactics_for
from polyx.bench import LayerProfile, LayerTime, count_layers_by_source, layer_tactic_source, summarize_profile


def _layer(name: str, kind: str, median_ms: float, source: str | None = None) -> LayerTime:
    return LayerTime(name=name, type=kind, precision="fp16", tactic=f"{kind.lower()}_kernel", source=source,
                     average_ms=median_ms + 1.0,  # summaries rank by median, not by average
                     median_ms=median_ms, total_ms=3 * (median_ms + 1.0), percentage=0.0)


PROFILE = LayerProfile(runs=3, layers=[
    _layer("conv1", "CONVOLUTION", 2.0, "CUBLAS"), _layer("relu", "ACTIVATION", 0.5),
    _layer("conv2", "CONVOLUTION", 4.0, "CUBLAS"), _layer("fc", "MATRIX_MULTIPLY", 1.5),
    _layer("pool", "POOLING", 0.5)])


def test_top_layers_by_median_with_shares_of_the_summed_medians():
    summary = summarize_profile(PROFILE, top=3)
    assert (summary.runs, summary.layers, summary.total_ms) == (3, 5, 8.5)
    assert [(t.name, t.median_ms, t.source) for t in summary.top] == [
        ("conv2", 4.0, "CUBLAS"), ("conv1", 2.0, "CUBLAS"), ("fc", 1.5, None)]
    assert [t.share for t in summary.top] == pytest.approx([4.0 / 8.5, 2.0 / 8.5, 1.5 / 8.5])
    assert summarize_profile(PROFILE, top=10).top[-2:][0].name == "relu"  # equal medians keep execution order
    assert summarize_profile(PROFILE, top=0).top == []


def test_type_shares_add_up_and_come_largest_first():
    by_type = summarize_profile(PROFILE, top=1).by_type
    assert [(t.type, t.layers, t.median_ms) for t in by_type] == [
        ("CONVOLUTION", 2, 6.0), ("MATRIX_MULTIPLY", 1, 1.5), ("ACTIVATION", 1, 0.5), ("POOLING", 1, 0.5)]
    assert [t.share for t in by_type] == pytest.approx([6.0 / 8.5, 1.5 / 8.5, 0.5 / 8.5, 0.5 / 8.5])
    doc = summarize_profile(PROFILE, top=1).to_json()
    assert doc["top"] == [{"name": "conv2", "type": "CONVOLUTION", "tactic": "convolution_kernel", "source": "CUBLAS",
                           "median_ms": 4.0, "share": pytest.approx(4.0 / 8.5)}]
    assert doc["by_type"][0] == {"type": "CONVOLUTION", "layers": 2, "median_ms": 6.0, "share": pytest.approx(6 / 8.5)}


def test_empty_or_zero_profiles_and_bad_top():
    empty = summarize_profile(LayerProfile(runs=1, layers=[]), top=5)
    assert (empty.total_ms, empty.top, empty.by_type) == (0, [], [])
    zero = summarize_profile(LayerProfile(runs=1, layers=[_layer("a", "SHUFFLE", 0.0)]), top=1)
    assert zero.top[0].share == 0.0 and zero.by_type[0].share == 0.0
    with pytest.raises(ValueError, match="top must be >= 0, got -1"):
        summarize_profile(PROFILE, top=-1)


def test_layers_counted_by_the_source_of_their_tactic():
    gpu = {t.name: t.id for t in tactics_for(LayerType.MATRIX_MULTIPLY, "gpu")}
    cpu = {t.name: t.id for t in tactics_for(LayerType.MATRIX_MULTIPLY, "cpu")}
    rows = [{"name": "shape", "host": True, "tactic_id": 0},
            {"name": "fc1", "host": False, "tactic_id": gpu["gpu:matmul:cublas_gemm_fp16"]},
            {"name": "fc2", "host": False, "tactic_id": gpu["gpu:matmul:cublas_gemm_tf32"]},
            {"name": "ref", "host": False, "tactic_id": gpu["gpu_reference_matrix_multiply"]},
            {"name": "cpu", "host": False, "tactic_id": cpu["cpu:matmul:batched_matmul"]},
            {"name": "plugin", "host": False, "tactic_id": 0x7FFFFFF1},  # not registered in this process
            {"name": "untimed", "host": False, "tactic_id": 0}]
    assert count_layers_by_source(rows) == {"none": 3, "CUBLAS": 2, "unknown": 1}
    assert list(count_layers_by_source(rows)) == ["none", "CUBLAS", "unknown"]  # most used first
    assert layer_tactic_source(rows[0]) is None and layer_tactic_source(rows[1]) == "CUBLAS"
    assert count_layers_by_source([]) == {}
