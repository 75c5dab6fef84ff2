"""GPU tactic of the recurrent layer (RNN_V2): cuBLAS GEMMs plus one NVRTC kernel per time step
(backends/kernels/recurrent.cu), with nothing read back inside the time loop, so an execution is capturable in
a CUDA graph.

Per execution: one GEMM computes the input projection X·W^T of every step and direction at once; then per step
one strided-batched GEMM computes H·R^T of every direction (GRU without linear_before_reset: a second GEMM of
(r ⊙ H)·R_h^T after the kernel that computes r), and the step kernel adds the projection and biases, applies
the gates, updates the float32 state in place and writes Y. float16 layers convert X, W, R (and P) into float32
scratch first and store Y, Y_h, Y_c as float16: all arithmetic and the state are float32. sequence_lens stays on
the device (its values are clamped into 0..seq there: checking them would read them back). CuPy is imported
inside functions: this module is imported on every machine.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backends.kernel_sources import storage_kernel
from ..dtypes import GPU_KERNEL_FLOAT_TYPES, nptype
from ..enums import ActivationType as Act
from ..enums import LayerType, RNNOperation, TacticSource
from ..ops.recurrent import RecurrentSpec
from .base import Tactic, TacticContext, stable_tactic_id
from .registry import register_tactic
from .scratch import carve, total_bytes

# Activation kinds as rnn_activate in recurrent.cu numbers them.
ACTIVATION_KINDS = {Act.RELU: 0, Act.TANH: 1, Act.SIGMOID: 2, Act.LEAKY_RELU: 3, Act.THRESHOLDED_RELU: 4,
                    Act.SCALED_TANH: 5, Act.HARD_SIGMOID: 6, Act.ELU: 7, Act.SOFTSIGN: 8, Act.SOFTPLUS: 9}
_SCRATCH = ("xw", "gates", "h", "c", "reset_h", "recur", "bias", "rbias", "x32", "w32", "r32", "p32")


def activation_table(spec: RecurrentSpec) -> np.ndarray:
    """(kind, alpha, beta) per direction and activation, float32 (dirs, activations * 3), as the kernels read it."""
    return np.array([[value for a in per_direction for value in (ACTIVATION_KINDS[a.type], a.alpha, a.beta)]
                     for per_direction in spec.activations], dtype=np.float32)


def _dims(spec: RecurrentSpec, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(seq, batch, input_size) of X in either layout."""
    seq, batch = (x_shape[1], x_shape[0]) if spec.layout else (x_shape[0], x_shape[1])
    return seq, batch, int(w_shape[2])


def scratch_specs(spec: RecurrentSpec, x_shape, w_shape, r_shape, dtype: np.dtype, has_peepholes: bool) -> list:
    """The float32 scratch buffers of one execution, in _SCRATCH order (unused ones are empty)."""
    seq, batch, size = _dims(spec, x_shape, w_shape)
    dirs, hidden = spec.num_directions, spec.hidden_size
    width = spec.gates * hidden
    two_gemms = spec.op == RNNOperation.GRU and not spec.linear_before_reset
    half = np.dtype(dtype) != np.float32
    state = (dirs, batch, hidden)
    return [((seq * batch, dirs * width), np.float32),
            ((dirs, batch, 2 * hidden if two_gemms else width), np.float32),
            (state, np.float32),
            (state if spec.op == RNNOperation.LSTM else (0,), np.float32),
            (state if two_gemms else (0,), np.float32),
            (state if two_gemms else (0,), np.float32),
            ((dirs, width), np.float32),
            ((dirs, hidden) if spec.op == RNNOperation.GRU and spec.linear_before_reset else (0,), np.float32),
            (tuple(x_shape) if half else (0,), np.float32),
            (tuple(w_shape) if half else (0,), np.float32),
            (tuple(r_shape) if half else (0,), np.float32),
            ((dirs, 3 * hidden) if half and has_peepholes else (0,), np.float32)]


class RecurrentGemmSteps(Tactic):
    name = "gpu:rnn_v2:gemm_steps"
    id = stable_tactic_id(name)
    layer_type = LayerType.RNN_V2
    backend = "gpu"
    source = TacticSource.CUBLAS
    heuristic_rank = 10

    def supports(self, ctx: TacticContext) -> bool | str:
        x = ctx.inputs[0]
        if x.dtype not in GPU_KERNEL_FLOAT_TYPES or ctx.outputs[0].dtype != x.dtype:
            return f"the kernels take FLOAT or HALF, not {x.dtype.value}"
        if any(info is not None and (info.shape is None or any(d < 0 for d in info.shape)) for info in ctx.inputs):
            return "input shapes must be concrete"
        return True

    def workspace_bytes(self, ctx: TacticContext) -> int:
        spec = RecurrentSpec.of(ctx.layer)
        x, w, r = ctx.inputs[0], ctx.inputs[1], ctx.inputs[2]
        peepholes = ctx.inputs[7] if len(ctx.inputs) > 7 else None
        return total_bytes(scratch_specs(spec, x.shape, w.shape, r.shape, np.dtype(nptype(x.dtype)),
                                         peepholes is not None))

    def prepare(self, ctx: TacticContext) -> dict:
        import cupy

        spec = RecurrentSpec.of(ctx.layer)
        kernel_base = {RNNOperation.LSTM: "lstm_step", RNNOperation.GRU: "gru_step", RNNOperation.RNN: "rnn_step"}
        return {"spec": spec, "act": cupy.asarray(activation_table(spec)), "kernel": kernel_base[spec.op],
                "reverse_mask": sum(1 << d for d in range(spec.num_directions) if spec.reversed(d))}

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        from ..backends.cublas_gemm import COMPUTE_32F, Operand, gemm
        from ..backends.nvrtc import kernel, launch_1d

        spec: RecurrentSpec = state["spec"]
        x, w, r, b, lengths, h0, c0, peepholes = (list(inputs) + [None] * 8)[:8]
        seq, batch, size = _dims(spec, x.shape, w.shape)
        dirs, hidden = spec.num_directions, spec.hidden_size
        width = spec.gates * hidden
        specs = scratch_specs(spec, x.shape, w.shape, r.shape, x.dtype, peepholes is not None)
        buf = dict(zip(_SCRATCH, carve(workspace, specs, xp)))
        x32, w32, r32 = (_as_float32(a, buf[key], xp) for a, key in ((x, "x32"), (w, "w32"), (r, "r32")))
        p32 = None if peepholes is None else _as_float32(peepholes, buf["p32"], xp)
        self._biases(spec, b, buf, xp)
        h, c = buf["h"], buf["c"]
        for initial, target in ((h0, h), (c0, c if spec.op == RNNOperation.LSTM else None)):
            if target is None:
                continue
            if initial is None:
                target.fill(0)
            else:
                xp.copyto(target, initial.transpose(1, 0, 2) if spec.layout else initial, casting="unsafe")
        y = outputs[0]
        y_target = y if y.flags.c_contiguous else xp.empty(y.shape, y.dtype)
        xw = buf["xw"]
        if seq * batch:
            gemm(Operand(x32, seq * batch, size, False, 0), Operand(w32, dirs * width, size, True, 0),
                 Operand(xw, seq * batch, dirs * width, False, 0), 1, COMPUTE_32F)
        xw_t, xw_b = (1, seq) if spec.layout else (batch, 1)
        y_t, y_d, y_b = (dirs * hidden, hidden, seq * dirs * hidden) if spec.layout else \
            (dirs * batch * hidden, batch * hidden, hidden)
        has_lengths = lengths is not None
        grid, block = launch_1d(dirs * batch * hidden)
        step_kernel = kernel("recurrent", storage_kernel(state["kernel"], y.dtype))
        reset_kernel = kernel("recurrent", "gru_reset")
        gates = buf["gates"]
        two_gemms = spec.op == RNNOperation.GRU and not spec.linear_before_reset
        clip = np.float32(spec.clip or 0.0)
        for step in range(seq):
            common = (xw, np.int64(xw_t), np.int64(xw_b), gates, buf["bias"], lengths if has_lengths else h,
                      np.int32(has_lengths), h, state["act"], clip, np.int32(state["reverse_mask"]), np.int32(step),
                      np.int32(seq), np.int32(batch), np.int32(hidden), np.int32(dirs))
            outs = (y_target, np.int64(y_t), np.int64(y_d), np.int64(y_b))
            if two_gemms:
                gemm(Operand(h, batch, hidden, False, batch * hidden), Operand(r32, 2 * hidden, hidden, True,
                                                                               width * hidden),
                     Operand(gates, batch, 2 * hidden, False, batch * 2 * hidden), dirs, COMPUTE_32F)
                reset_kernel(grid, block, (*common, buf["reset_h"]))
                gemm(Operand(buf["reset_h"], batch, hidden, False, batch * hidden),
                     Operand(r32[:, 2 * hidden:], hidden, hidden, True, width * hidden),
                     Operand(buf["recur"], batch, hidden, False, batch * hidden), dirs, COMPUTE_32F)
            else:
                gemm(Operand(h, batch, hidden, False, batch * hidden), Operand(r32, width, hidden, True,
                                                                               width * hidden),
                     Operand(gates, batch, width, False, batch * width), dirs, COMPUTE_32F)
            if spec.op == RNNOperation.LSTM:
                step_kernel(grid, block, (*common, c, h if p32 is None else p32, np.int32(p32 is not None),
                                          np.int32(spec.input_forget), *outs))
            elif spec.op == RNNOperation.GRU:
                step_kernel(grid, block, (*common, np.int32(gates.shape[-1]), buf["recur"] if two_gemms else h,
                                          buf["rbias"] if spec.linear_before_reset else h,
                                          np.int32(spec.linear_before_reset), *outs))
            else:
                step_kernel(grid, block, (*common, *outs))
        if y_target is not y:
            xp.copyto(y, y_target)
        finals = [(outputs[1], h)] + ([(outputs[2], c)] if spec.op == RNNOperation.LSTM else [])
        for out, final in finals:
            xp.copyto(out, final.transpose(1, 0, 2) if spec.layout else final, casting="unsafe")

    @staticmethod
    def _biases(spec: RecurrentSpec, b: Any, buf: dict, xp: Any) -> None:
        """bias = Wb + Rb per gate (the kernels add it to the projection); with linear_before_reset the GRU's
        Rb_h goes to rbias instead, since the reset gate multiplies it."""
        bias, rbias = buf["bias"], buf["rbias"]
        if b is None:
            bias.fill(0)
            rbias.fill(0)
            return
        width, hidden = spec.gates * spec.hidden_size, spec.hidden_size
        xp.add(b[:, :width], b[:, width:], out=bias, casting="unsafe")
        if spec.op == RNNOperation.GRU and spec.linear_before_reset:
            xp.copyto(bias[:, 2 * hidden:], b[:, 2 * hidden:width], casting="unsafe")
            xp.copyto(rbias, b[:, width + 2 * hidden:], casting="unsafe")


def _as_float32(array: Any, buffer: Any, xp: Any) -> Any:
    """`array` itself when it is contiguous float32, else its float32 copy in `buffer`."""
    if array.dtype == np.float32 and array.flags.c_contiguous:
        return array
    target = buffer if buffer.size == math.prod(array.shape) else xp.empty(array.shape, xp.float32)
    target = target.reshape(array.shape)
    xp.copyto(target, array, casting="unsafe")
    return target


register_tactic(RecurrentGemmSteps())
