"""The GPU recurrent tactic's host side, on the CPU: its GEMM operands (shapes, transposes, batch strides), scratch
layout, bias set-up, strides into the projection and Y, and step loop, run with NumPy stand-ins for cuBLAS and for
the NVRTC kernels, against the layer's reference kernel.

The stand-in kernels transcribe backends/kernels/recurrent.cu line by line (vectorised over batch and hidden
units); they check the orchestration and the index arithmetic the tactic hands the kernels, not the CUDA code,
which the `gpu` tests in test_recurrent.py run. A consistency test ties the kernel's activation numbering to the
tactic's table."""
from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from onnx import numpy_helper
from recurrent_models import OUTPUTS, recurrent_model

from engine.conformance.harness import parse_onnx
from engine.dtypes import from_numpy
from engine.enums import ActivationType, LayerType
from engine.ops.base import TensorInfo, layer_impl
from engine.tactics.base import TacticContext
from engine.tactics.gpu_recurrent import ACTIVATION_KINDS, RecurrentGemmSteps

KERNELS = Path(__file__).resolve().parents[3] / "engine" / "backends" / "kernels" / "recurrent.cu"


def test_activation_numbering_matches_the_kernel():
    text = KERNELS.read_text()
    numbered = {ActivationType(name): int(number) for number, name in re.findall(r"case (\d+): .*// (\w+)", text)}
    assert re.search(r"default: \{\s*// SOFTPLUS", text)  # the switch's last branch
    numbered[ActivationType.SOFTPLUS] = len(numbered)
    assert numbered == ACTIVATION_KINDS


# ------------------------------------------------------------------------------------------ NumPy stand-ins


@dataclass(frozen=True)
class Operand:
    array: np.ndarray
    rows: int
    cols: int
    transposed: bool
    batch_stride: int


def _matrices(operand: Operand, batch: int) -> np.ndarray:
    array = operand.array
    size = array.itemsize
    return np.lib.stride_tricks.as_strided(array, (batch, operand.rows, operand.cols),
                                           (operand.batch_stride * size, operand.cols * size, size))


def gemm(a, b, c, batch, compute_type, alpha=1.0, beta=0.0):
    """cublasGemmStridedBatchedEx as engine/backends/cublas_gemm.py calls it, in float64."""
    left, right = _matrices(a, batch), _matrices(b, batch)
    left = left.swapaxes(1, 2) if a.transposed else left
    right = right.swapaxes(1, 2) if b.transposed else right
    out = _matrices(c, batch)
    out[...] = alpha * (left.astype(np.float64) @ right) + beta * out


def _activate(a, v):
    kind, alpha, beta = int(a[0]), a[1], a[2]
    with np.errstate(all="ignore"):
        return {0: lambda: np.maximum(v, 0), 1: lambda: np.tanh(v), 2: lambda: 1 / (1 + np.exp(-v)),
                3: lambda: np.where(v >= 0, v, alpha * v), 4: lambda: np.where(v > alpha, v, 0),
                5: lambda: alpha * np.tanh(beta * v), 6: lambda: np.clip(alpha * v + beta, 0, 1),
                7: lambda: np.where(v > 0, v, alpha * np.expm1(v)), 8: lambda: v / (1 + np.abs(v)),
                9: lambda: alpha * np.logaddexp(0, beta * v)}[kind]()


def _clip(v, clip):
    return np.clip(v, -clip, clip) if clip > 0 else v


class StepKernels:
    """recurrent.cu's entry points: each call runs every (d, b, j) thread of one launch."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, grid, block, args):
        (xw, xw_t, xw_b, gates, bias, lengths, has_lengths, h, act, clip, reverse_mask, step, T, N, H, D,
         *rest) = args
        xw_t, xw_b, step, T, N, H, D, clip = (int(xw_t), int(xw_b), int(step), int(T), int(N), int(H), int(D),
                                              float(clip))
        length = np.clip(lengths.astype(np.int64), 0, T) if has_lengths else np.full(N, T)
        active = step < length
        b = np.arange(N)
        act = act.reshape(D, -1)
        base = self.name.rsplit("_f", 1)[0] if self.name != "gru_reset" else "gru_reset"
        gate_count = {"lstm_step": 4, "gru_step": 3, "gru_reset": 3, "rnn_step": 1}[base]
        for d in range(D):
            reverse = (int(reverse_mask) >> d) & 1
            t = np.where(active & bool(reverse), length - 1 - step, step)
            G = gate_count * H
            rows = (t * xw_t + b * xw_b) * (D * G) + d * G
            x = xw.reshape(-1)[rows[:, None] + np.arange(G)]          # (N, G) this direction's projection
            bs = bias.reshape(-1)[d * G:(d + 1) * G]
            state = h.reshape(D, N, H)[d]
            a = act[d]
            getattr(self, base)(d, x, bs, gates, state, a, clip, active, length, step, N, H, D, t, b, rest)

    @staticmethod
    def _write_y(rest_y, d, t, b, step, active, values):
        y, y_t, y_d, y_b = rest_y
        flat = y.reshape(-1)
        time = np.where(active, t, step)
        offsets = time[:, None] * int(y_t) + d * int(y_d) + b[:, None] * int(y_b) + np.arange(values.shape[1])
        flat[offsets] = np.where(active[:, None], values, 0).astype(y.dtype)

    def lstm_step(self, d, x, bs, gates, h, a, clip, active, length, step, N, H, D, t, b, rest):
        c, peep, has_peep, input_forget, *y = rest
        g = gates.reshape(D, N, 4 * H)[d]
        c_state = c.reshape(D, N, H)[d]
        pre = x + g + bs
        gi, go, gf, gc = (pre[:, k * H:(k + 1) * H] for k in range(4))
        c_prev = c_state.copy()
        if has_peep:
            p = peep.reshape(D, 3 * H)[d]
            gi, gf = gi + p[:H] * c_prev, gf + p[2 * H:] * c_prev
        i = _activate(a[0:3], _clip(gi, clip))
        f = 1 - i if input_forget else _activate(a[0:3], _clip(gf, clip))
        c_new = f * c_prev + i * _activate(a[3:6], _clip(gc, clip))
        if has_peep:
            go = go + peep.reshape(D, 3 * H)[d][H:2 * H] * c_new
        h_new = _activate(a[0:3], _clip(go, clip)) * _activate(a[6:9], c_new)
        keep = active[:, None]
        empty = ((length == 0) & (step == 0))[:, None]
        c_state[...] = np.where(keep, c_new, np.where(empty, 0, c_state))
        h[...] = np.where(keep, h_new, np.where(empty, 0, h))
        self._write_y(y, d, t, b, step, active, h_new)

    def rnn_step(self, d, x, bs, gates, h, a, clip, active, length, step, N, H, D, t, b, rest):
        h_new = _activate(a[0:3], _clip(x + gates.reshape(D, N, H)[d] + bs, clip))
        empty = ((length == 0) & (step == 0))[:, None]
        h[...] = np.where(active[:, None], h_new, np.where(empty, 0, h))
        self._write_y(rest, d, t, b, step, active, h_new)

    def gru_step(self, d, x, bs, gates, h, a, clip, active, length, step, N, H, D, t, b, rest):
        gate_stride, recur, rbias, linear_before_reset, *y = rest
        g = gates.reshape(-1)[(d * N + b)[:, None] * int(gate_stride) + np.arange(int(gate_stride))]
        if linear_before_reset:
            z = _activate(a[0:3], _clip(x[:, :H] + g[:, :H] + bs[:H], clip))
            r = _activate(a[0:3], _clip(x[:, H:2 * H] + g[:, H:2 * H] + bs[H:2 * H], clip))
            candidate = x[:, 2 * H:] + bs[2 * H:] + r * (g[:, 2 * H:3 * H] + rbias.reshape(D, H)[d])
        else:
            z = g[:, :H]
            candidate = x[:, 2 * H:] + bs[2 * H:] + recur.reshape(D, N, H)[d]
        h_new = (1 - z) * _activate(a[3:6], _clip(candidate, clip)) + z * h
        empty = ((length == 0) & (step == 0))[:, None]
        h[...] = np.where(active[:, None], h_new, np.where(empty, 0, h))
        self._write_y(y, d, t, b, step, active, h_new)

    def gru_reset(self, d, x, bs, gates, h, a, clip, active, length, step, N, H, D, t, b, rest):
        (reset_h,) = rest
        g = gates.reshape(D, N, 2 * H)[d]
        z = _activate(a[0:3], _clip(x[:, :H] + g[:, :H] + bs[:H], clip))
        r = _activate(a[0:3], _clip(x[:, H:2 * H] + g[:, H:] + bs[H:2 * H], clip))
        keep = active[:, None]
        g[:, :H] = np.where(keep, z, g[:, :H])
        reset_h.reshape(D, N, H)[d][...] = np.where(keep, r * h, 0)


@pytest.fixture
def cpu_stand_ins(monkeypatch):
    """The tactic's lazy imports (cupy, cublas_gemm, nvrtc) answered by NumPy stand-ins, for this test only."""
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(asarray=np.asarray))
    monkeypatch.setitem(sys.modules, "engine.backends.cublas_gemm",
                        types.SimpleNamespace(COMPUTE_32F=68, Operand=Operand, gemm=gemm))
    monkeypatch.setitem(sys.modules, "engine.backends.nvrtc",
                        types.SimpleNamespace(kernel=lambda module, name: StepKernels(name),
                                              launch_1d=lambda total, threads=256: ((1,), (threads,))))


def _layer_and_inputs(model, feeds, dtype):
    network = parse_onnx(model)
    (layer,) = [layer for layer in network.layers if layer.type == LayerType.RNN_V2]
    initializers = {init.name: init for init in model.graph.initializer}
    arrays = []
    for tensor in layer.inputs:
        if tensor is None:
            arrays.append(None)
        elif tensor.name in feeds:
            arrays.append(feeds[tensor.name])
        else:
            arrays.append(numpy_helper.to_array(initializers[tensor.name]))
    arrays = [a if a is None or a.dtype.kind != "f" else a.astype(dtype) for a in arrays]
    return layer, arrays


CONFIGS = [
    ("LSTM", dict(direction="bidirectional", lengths=[5, 0, 3], initial=True, peepholes=True)),
    ("LSTM", dict(direction="reverse", layout=1, lengths=[2, 5, 4], initial=True, clip=0.5, input_forget=1)),
    ("LSTM", dict(direction="forward", bias=False)),
    ("GRU", dict(direction="bidirectional", lengths=[5, 1, 3], initial=True)),
    ("GRU", dict(direction="bidirectional", layout=1, lengths=[4, 5, 0], initial=True, linear_before_reset=1)),
    ("GRU", dict(direction="reverse", clip=0.3, activations=["HardSigmoid", "Softsign"], activation_alpha=[0.3],
                 activation_beta=[0.4])),
    ("RNN", dict(direction="bidirectional", lengths=[3, 5, 2], initial=True,
                 activations=["Relu", "LeakyRelu"], activation_alpha=[0.2])),
    ("RNN", dict(direction="forward", layout=1, activations=["Softplus"])),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("op,options", CONFIGS, ids=lambda v: str(v))
def test_tactic_steps_match_the_reference_kernel(cpu_stand_ins, op, options, dtype):
    model, feeds = recurrent_model(op, **options)
    layer, inputs = _layer_and_inputs(model, feeds, dtype)
    expected = layer_impl(LayerType.RNN_V2).compute(layer, inputs, np)
    tactic = RecurrentGemmSteps()
    infos = [None if a is None else TensorInfo(a.shape, from_numpy(a.dtype), None) for a in inputs]
    ctx = TacticContext(layer, infos, [TensorInfo(e.shape, from_numpy(e.dtype)) for e in expected], "gpu")
    assert tactic.supports(ctx) is True
    workspace = np.zeros(tactic.workspace_bytes(ctx), np.uint8)
    outputs = [np.full(e.shape, np.nan, e.dtype) for e in expected]
    tactic.run(tactic.prepare(ctx), inputs, outputs, workspace, np)
    tolerance = 1e-5 if dtype == np.float32 else 2e-3
    for name, got, want in zip(OUTPUTS[op], outputs, expected):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tolerance,
                                   atol=tolerance, err_msg=name)
