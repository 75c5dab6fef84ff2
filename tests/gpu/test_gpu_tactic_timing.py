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
