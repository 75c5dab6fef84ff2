"""Tactic timing on the GPU (GpuBackend.time_runs): a tactic's time is what the GPU spends on its calls, replayed
as a CUDA graph the way engines run, not the host's Python enqueueing them; a call that cannot be captured is
timed one call at a time, as it would run."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")


def test_timings_measure_the_gpu_not_the_host_work_around_a_launch():
    from engine.backends.gpu import GpuBackend

    x = cupy.arange(1 << 20, dtype=cupy.float32)
    y = cupy.empty_like(x)

    def run():
        time.sleep(0.003)  # host work before the launch (a tactic's Python), far longer than the kernel
        cupy.multiply(x, 2, out=y)

    run()
    samples = GpuBackend().time_runs(run, 4)
    assert len(samples) == 4
    # 8 MB of memory traffic: microseconds on any data-center GPU; the 3 ms sleep must not be in the samples
    assert 0 < max(samples) < 0.5, samples
    np.testing.assert_array_equal(cupy.asnumpy(y[:5]), [0, 2, 4, 6, 8])


def test_a_call_that_reads_back_to_the_host_is_timed_call_by_call():
    from engine.backends.gpu import GpuBackend

    x = cupy.ones(1024, dtype=cupy.float32)
    seen = []

    def run():
        seen.append(float(x.sum()))  # a device-to-host read: no CUDA graph can capture it

    run()
    samples = GpuBackend().time_runs(run, 3)
    assert len(samples) == 3 and all(s > 0 for s in samples), samples
    assert set(seen) == {1024.0}


def test_the_profiler_reports_each_layers_gpu_time_and_the_outputs_stay_right():
    """A GPU engine's profiled run: every device layer reported once per run with its GPU time (replayed), the
    outputs equal to an unprofiled run's; `profile_device_time = False` reports the synchronized wall time."""
    import onnxruntime as ort
    from channels_last_models import feeds, resnet_like_model

    import engine as trt

    model = resnet_like_model()
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(model.SerializeToString())
    config = builder.create_builder_config()
    config.device = "gpu"
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 12, 12), (2, 3, 12, 12), (4, 3, 12, 12))
    config.add_optimization_profile(profile)
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(
        builder.build_serialized_network(network, config))

    class LayerTimes(trt.IProfiler):
        def __init__(self):
            self.calls = []

        def report_layer_time(self, layer_name, ms):
            self.calls.append((layer_name, ms))

    x = feeds(2, seed=1)
    plain = engine.create_execution_context().execute(x)
    context = engine.create_execution_context()
    context.profiler = LayerTimes()
    profiled = context.execute(x)
    for name, value in plain.items():
        np.testing.assert_array_equal(profiled[name], value, err_msg=name)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, x)
    np.testing.assert_allclose(profiled["y"], want[0], rtol=1e-4, atol=1e-4)
    device_layers = [row["name"] for row in engine.layer_info() if not row["host"]]
    assert [name for name, _ in context.profiler.calls] == device_layers
    assert all(0 < ms < 1.0 for _, ms in context.profiler.calls), context.profiler.calls  # small layers: GPU time
    context.profile_device_time = False
    context.profiler = LayerTimes()
    context.execute(x)
    assert [name for name, _ in context.profiler.calls] == device_layers
