"""Recurrent layers (LayerType.RNN_V2, `network.add_rnn_v2`) and ONNX LSTM, GRU and RNN.

One layer runs a whole sequence through one cell type (param `op`: RNNOperation LSTM | GRU | RNN) in one or both
directions, with ONNX's semantics and weight layouts, so an ONNX node is one layer whose weights stay plain
Constant inputs (plan buffers, like a convolution's kernel):

  inputs   X (seq, batch, input_size) — (batch, seq, input_size) with layout 1
           W (dirs, gates*hidden, input_size)   R (dirs, gates*hidden, hidden)   B (dirs, 2*gates*hidden) or None
           sequence_lens (batch,) INT32 or None, initial_h / initial_c (dirs, batch, hidden) — (batch, dirs, hidden)
           with layout 1 — or None, P (dirs, 3*hidden) LSTM peepholes (i, o, f) or None
  outputs  Y (seq, dirs, batch, hidden) — (batch, seq, dirs, hidden) with layout 1 — then Y_h, and for LSTM Y_c
           (dirs, batch, hidden) — (batch, dirs, hidden) with layout 1

Gate order (ONNX): LSTM i, o, f, c; GRU z, r, h; RNN one gate. Params: `direction` (RNNDirection), `hidden_size`,
`layout` (0 | 1), `activations` (ActivationType values, one set per direction: LSTM f, g, h; GRU f, g; RNN f),
`activation_alpha` / `activation_beta` (one per activation), `clip` (None, or the bound the gate pre-activations
are clipped to), `input_forget` (LSTM: f = 1 - i) and `linear_before_reset` (GRU: r multiplies R_h·H + Rb_h
instead of H).

A batch entry with sequence length L runs L steps (the reverse direction starts at step L - 1); its Y rows from L
on are zero and its Y_h / Y_c are the state after step L (zero when L is 0, as in onnxruntime). float16 computes in
float32. The reference kernel computes the input projection X·W of every step in one GEMM, then one GEMM (two
for GRU without linear_before_reset) per step; engine/tactics/gpu_recurrent.py is the GPU tactic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dtypes import DataType
from ..enums import ActivationType as Act
from ..enums import LayerType, RNNDirection, RNNOperation
from ..errors import EngineError, UnsupportedCategory
from .base import TensorInfo, layer_impl, onnx_op, register_layer

GATES = {RNNOperation.LSTM: 4, RNNOperation.GRU: 3, RNNOperation.RNN: 1}
ACTIVATIONS_PER_DIRECTION = {RNNOperation.LSTM: 3, RNNOperation.GRU: 2, RNNOperation.RNN: 1}
DEFAULT_ACTIVATIONS = {RNNOperation.LSTM: (Act.SIGMOID, Act.TANH, Act.TANH),
                       RNNOperation.GRU: (Act.SIGMOID, Act.TANH), RNNOperation.RNN: (Act.TANH,)}
# The activations a recurrent cell may use: those of the ONNX RNN ops that TensorRT's ActivationType has (ONNX's
# Affine is not one of them).
CELL_ACTIVATIONS = frozenset({Act.RELU, Act.TANH, Act.SIGMOID, Act.LEAKY_RELU, Act.THRESHOLDED_RELU,
                              Act.SCALED_TANH, Act.HARD_SIGMOID, Act.ELU, Act.SOFTSIGN, Act.SOFTPLUS})
INPUT_NAMES = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
FLOAT_INPUTS = (0, 1, 2, 3, 5, 6, 7)


@dataclass(frozen=True)
class CellActivation:
    type: Act
    alpha: float
    beta: float


@dataclass(frozen=True)
class RecurrentSpec:
    """A recurrent layer's params, checked and resolved once (per-direction activations, gate count)."""

    op: RNNOperation
    direction: RNNDirection
    hidden_size: int
    layout: int
    activations: tuple[tuple[CellActivation, ...], ...]  # per direction
    clip: float | None
    input_forget: bool
    linear_before_reset: bool

    @property
    def num_directions(self) -> int:
        return 2 if self.direction == RNNDirection.BIDIRECTIONAL else 1

    @property
    def gates(self) -> int:
        return GATES[self.op]

    def reversed(self, d: int) -> bool:
        """Whether direction `d` walks the sequence from its end."""
        return self.direction == RNNDirection.REVERSE or d == 1

    @staticmethod
    def of(layer: Any) -> RecurrentSpec:
        p = layer.params
        try:
            op, direction = RNNOperation(p["op"]), RNNDirection(p["direction"])
        except ValueError as exc:
            raise EngineError(f"recurrent layer: {exc}") from None
        hidden = p["hidden_size"]
        if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
            raise EngineError(f"hidden_size must be a positive integer, got {hidden!r}")
        if p["layout"] not in (0, 1):
            raise EngineError(f"layout must be 0 (sequence first) or 1 (batch first), got {p['layout']!r}")
        clip = p["clip"]
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or
                                 not 0 < clip < float("inf")):
            raise EngineError(f"clip must be None or a positive finite number, got {clip!r}")
        directions = 2 if direction == RNNDirection.BIDIRECTIONAL else 1
        return RecurrentSpec(op, direction, hidden, int(p["layout"]), _activations(p, op, directions),
                             None if clip is None else float(clip), bool(p["input_forget"]),
                             bool(p["linear_before_reset"]))


def _activations(p: dict, op: RNNOperation, directions: int) -> tuple[tuple[CellActivation, ...], ...]:
    """Per direction, the cell's activations: `activations` holds one set for every direction or one per
    direction, with alphas and betas of the same length."""
    count = ACTIVATIONS_PER_DIRECTION[op]
    names, alphas, betas = p["activations"], p["activation_alpha"], p["activation_beta"]
    if not isinstance(names, list) or len(names) not in (count, count * directions):
        raise EngineError(f"activations must list {count} (or {count * directions}: one set per direction) "
                          f"activations for {op.value}, got {names!r}")
    for key, values in (("activation_alpha", alphas), ("activation_beta", betas)):
        if not isinstance(values, list) or len(values) != len(names) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise EngineError(f"{key} must hold one number per activation ({len(names)}), got {values!r}")
    entries = []
    for name, alpha, beta in zip(names, alphas, betas):
        if name not in {a.value for a in CELL_ACTIVATIONS}:
            raise EngineError(f"activation {name!r} cannot be a recurrent cell's; supported: "
                              f"{sorted(a.value for a in CELL_ACTIVATIONS)}")
        entries.append(CellActivation(Act(name), float(alpha), float(beta)))
    if len(entries) == count:
        entries = entries * directions
    return tuple(tuple(entries[d * count:(d + 1) * count]) for d in range(directions))


def _agree(actual: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    return len(actual) == len(expected) and all(a < 0 or e < 0 or a == e for a, e in zip(actual, expected))


def _dims(*names_and_values: tuple[str, int]) -> str:
    return "[" + ", ".join(f"{name}={value}" if value >= 0 else name for name, value in names_and_values) + "]"


def _check_roles_and_types(spec: RecurrentSpec, infos: list[TensorInfo | None]) -> None:
    """The inputs and options this cell type has, and one float type for every float input."""
    for position, name in ((0, "X"), (1, "W"), (2, "R")):
        if infos[position] is None:
            raise EngineError(f"input {name} is missing")
    if spec.op != RNNOperation.LSTM:
        for position in (6, 7):
            if infos[position] is not None:
                raise EngineError(f"{spec.op.value} has no input {INPUT_NAMES[position]} (LSTM only)")
    if spec.input_forget and spec.op != RNNOperation.LSTM:
        raise EngineError(f"input_forget is an LSTM option, not {spec.op.value}'s")
    if spec.linear_before_reset and spec.op != RNNOperation.GRU:
        raise EngineError(f"linear_before_reset is a GRU option, not {spec.op.value}'s")
    x = infos[0]
    for position in FLOAT_INPUTS:
        info = infos[position]
        if info is None:
            continue
        if not info.dtype.is_floating:
            raise EngineError(f"input {INPUT_NAMES[position]} has data type {info.dtype.value}; a recurrent layer "
                              "takes float16/float32/float64")
        if info.dtype != x.dtype:
            raise EngineError(f"input {INPUT_NAMES[position]} is {info.dtype.value} but X is {x.dtype.value}")
    lengths = infos[4]
    if lengths is not None and lengths.dtype != DataType.INT32:
        raise EngineError(f"input sequence_lens has data type {lengths.dtype.value}; ONNX requires INT32")
    if any(info is not None and info.shape is None for info in infos):
        raise EngineError("a recurrent layer needs the rank of every input")


def _check_shapes(spec: RecurrentSpec, infos: list[TensorInfo | None]) -> tuple[int, int]:
    """Every input's shape against X's and the layer's params (dims of -1 agree with anything): (seq, batch)."""
    x = infos[0]
    if len(x.shape) != 3:
        raise EngineError(f"X must be 3-D {'(batch, seq, input_size)' if spec.layout else '(seq, batch, input_size)'}"
                          f", got shape {list(x.shape)}")
    seq, batch, size = (x.shape[1], x.shape[0], x.shape[2]) if spec.layout else x.shape
    dirs, gates, hidden = spec.num_directions, spec.gates * spec.hidden_size, spec.hidden_size
    state = ((batch, dirs, hidden), _dims(("batch", batch), ("num_directions", dirs), ("hidden_size", hidden))) \
        if spec.layout else ((dirs, batch, hidden), _dims(("num_directions", dirs), ("batch", batch),
                                                          ("hidden_size", hidden)))
    expected = {1: ((dirs, gates, size), _dims(("num_directions", dirs), (f"{spec.gates}*hidden_size", gates),
                                                ("input_size", size))),
                2: ((dirs, gates, hidden), _dims(("num_directions", dirs), (f"{spec.gates}*hidden_size", gates),
                                                  ("hidden_size", hidden))),
                3: ((dirs, 2 * gates), _dims(("num_directions", dirs), (f"{2 * spec.gates}*hidden_size", 2 * gates))),
                4: ((batch,), _dims(("batch", batch)) + ", one length per batch entry"),
                5: state, 6: state,
                7: ((dirs, 3 * hidden), _dims(("num_directions", dirs), ("3*hidden_size", 3 * hidden)))}
    for position, (shape, text) in expected.items():
        info = infos[position]
        if info is not None and not _agree(tuple(info.shape), shape):
            raise EngineError(f"input {INPUT_NAMES[position]} has shape {list(info.shape)}; expected {text} "
                              f"(hidden_size {hidden}, direction {spec.direction.value})")
    return seq, batch


def _infer(layer, inputs: list[TensorInfo | None]):
    spec = RecurrentSpec.of(layer)
    if len(inputs) > 8:
        raise EngineError(f"a recurrent layer takes at most 8 inputs ({', '.join(INPUT_NAMES)}), got {len(inputs)}")
    infos = (list(inputs) + [None] * 8)[:8]
    _check_roles_and_types(spec, infos)
    seq, batch = _check_shapes(spec, infos)
    dirs, hidden, dtype = spec.num_directions, spec.hidden_size, infos[0].dtype
    y = (batch, seq, dirs, hidden) if spec.layout else (seq, dirs, batch, hidden)
    state = (batch, dirs, hidden) if spec.layout else (dirs, batch, hidden)
    return [(y, dtype), (state, dtype)] + ([(state, dtype)] if spec.op == RNNOperation.LSTM else [])


# ---------------------------------------------------------------------------------------------------- reference


class _ActivationParams:
    """The minimal layer-like object the ACTIVATION kernel reads its parameters from."""

    def __init__(self, activation: CellActivation):
        self.params = {"activation_type": activation.type, "alpha": activation.alpha, "beta": activation.beta}


def _activate(activation: CellActivation, x: Any, xp: Any) -> Any:
    if activation.type == Act.SIGMOID:  # the common case, without the ACTIVATION kernel's dispatch
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
    if activation.type == Act.TANH:
        return xp.tanh(x)
    return layer_impl(LayerType.ACTIVATION).compute(_ActivationParams(activation), [x], xp)[0]


def _split(gates: Any, count: int) -> list[Any]:
    hidden = gates.shape[-1] // count
    return [gates[..., k * hidden:(k + 1) * hidden] for k in range(count)]


class _Cell:
    """One direction's weights (float32/float64) and the step function of its cell type."""

    def __init__(self, spec: RecurrentSpec, d: int, w: Any, r: Any, b: Any, peepholes: Any, xp: Any):
        self.spec, self.xp = spec, xp
        self.act = spec.activations[d]
        self.w, self.r = w[d], r[d]
        hidden, gates = spec.hidden_size, spec.gates
        self.input_bias = None if b is None else b[d, :gates * hidden] + b[d, gates * hidden:]
        self.recurrent_bias_h = None
        if spec.op == RNNOperation.GRU and spec.linear_before_reset and b is not None:
            # Rb_h stays inside the reset gate's product: only Wb_h joins the input projection.
            self.input_bias = xp.concatenate([self.input_bias[:2 * hidden], b[d, 2 * hidden:3 * hidden]])
            self.recurrent_bias_h = b[d, 5 * hidden:]
        self.peepholes = None if peepholes is None else _split(peepholes[d], 3)

    def clip(self, v: Any) -> Any:
        return v if self.spec.clip is None else self.xp.clip(v, -self.spec.clip, self.spec.clip)

    def projection(self, x: Any) -> Any:
        """X·W^T (+ biases) of every step at once: (seq, batch, gates*hidden)."""
        seq, batch, size = x.shape
        xw = (x.reshape(seq * batch, size) @ self.w.T).reshape(seq, batch, -1)
        return xw if self.input_bias is None else xw + self.input_bias

    def step(self, xw: Any, h: Any, c: Any) -> tuple[Any, Any]:
        op = self.spec.op
        if op == RNNOperation.RNN:
            return _activate(self.act[0], self.clip(xw + h @ self.r.T), self.xp), None
        if op == RNNOperation.GRU:
            return self._gru(xw, h), None
        return self._lstm(xw, h, c)

    def _lstm(self, xw: Any, h: Any, c: Any) -> tuple[Any, Any]:
        f_act, g_act, h_act = self.act
        i, o, f, g = _split(xw + h @ self.r.T, 4)
        if self.peepholes is not None:
            pi, po, pf = self.peepholes
            i, f = i + pi * c, f + pf * c
        i = _activate(f_act, self.clip(i), self.xp)
        f = 1 - i if self.spec.input_forget else _activate(f_act, self.clip(f), self.xp)
        c_new = f * c + i * _activate(g_act, self.clip(g), self.xp)
        if self.peepholes is not None:
            o = o + self.peepholes[1] * c_new
        o = _activate(f_act, self.clip(o), self.xp)
        return o * _activate(h_act, c_new, self.xp), c_new

    def _gru(self, xw: Any, h: Any) -> Any:
        f_act, g_act = self.act
        hidden = self.spec.hidden_size
        xz, xr, xh = _split(xw, 3)
        recurrent_zr = h @ self.r[:2 * hidden].T
        z = _activate(f_act, self.clip(xz + recurrent_zr[:, :hidden]), self.xp)
        reset = _activate(f_act, self.clip(xr + recurrent_zr[:, hidden:]), self.xp)
        if self.spec.linear_before_reset:
            recurrent_h = h @ self.r[2 * hidden:].T
            if self.recurrent_bias_h is not None:
                recurrent_h = recurrent_h + self.recurrent_bias_h
            candidate = xh + reset * recurrent_h
        else:
            candidate = xh + (reset * h) @ self.r[2 * hidden:].T
        candidate = _activate(g_act, self.clip(candidate), self.xp)
        return (1 - z) * candidate + z * h


def _checked_lengths(lengths: Any, seq: int, xp: Any) -> Any:
    """sequence_lens as int64 (batch,). On the host a length outside 0..seq is an error; on the GPU reading the
    values back would stall the stream, so they are clamped into range there."""
    lengths = lengths.reshape(-1).astype(xp.int64)
    if xp is np:
        bad = lengths[(lengths < 0) | (lengths > seq)]
        if bad.size:
            raise EngineError(f"sequence_lens holds {int(bad[0])}; every length must be in 0..{seq} (the sequence "
                              "length of X)")
        return lengths
    return xp.clip(lengths, 0, seq)


def _compute(layer, inputs, xp):
    spec = RecurrentSpec.of(layer)
    x, w, r, b, lengths, h0, c0, peepholes = (list(inputs) + [None] * 8)[:8]
    out_dtype = x.dtype
    work = xp.float64 if out_dtype == xp.float64 else xp.float32
    x, w, r, b, h0, c0, peepholes = (None if a is None else a.astype(work, copy=False)
                                     for a in (x, w, r, b, h0, c0, peepholes))
    if spec.layout:
        x = x.transpose(1, 0, 2)
        h0, c0 = (None if a is None else a.transpose(1, 0, 2) for a in (h0, c0))
    seq, batch, _ = x.shape
    hidden = spec.hidden_size
    steps = xp.arange(seq, dtype=xp.int64)[:, None]
    if lengths is None:
        active, walk_back = None, seq - 1 - steps
    else:
        lengths = _checked_lengths(lengths, seq, xp)[None, :]
        active = (steps < lengths)[..., None]  # (seq, batch, 1): the batch entries step s updates
        # Step s of a reversed walk reads time L - 1 - s; steps past L stay in place (and output zeros).
        walk_back = xp.where(steps < lengths, lengths - 1 - steps, steps)
    ys, final_h, final_c = [], [], []
    for d in range(spec.num_directions):
        cell = _Cell(spec, d, w, r, b, peepholes, xp)
        order = xp.broadcast_to(walk_back, (seq, batch)) if spec.reversed(d) else None
        xd = x if order is None else xp.take_along_axis(x, order[..., None], axis=0)
        xw = cell.projection(xd)
        h = xp.zeros((batch, hidden), work) if h0 is None else h0[d]
        c = xp.zeros((batch, hidden), work) if c0 is None else c0[d]
        y = xp.zeros((seq, batch, hidden), work)
        for s in range(seq):
            h_new, c_new = cell.step(xw[s], h, c)
            if active is None:
                h, c = h_new, c if c_new is None else c_new
                y[s] = h_new
            else:
                h = xp.where(active[s], h_new, h)
                c = c if c_new is None else xp.where(active[s], c_new, c)
                y[s] = xp.where(active[s], h_new, 0)
        # The reversed walk's order is its own inverse: it also puts step outputs back at their time.
        if lengths is not None:  # as onnxruntime: an empty sequence's final state is zero, not the initial one
            h, c = xp.where(lengths.T > 0, h, 0), xp.where(lengths.T > 0, c, 0)
        ys.append(y if order is None else xp.take_along_axis(y, order[..., None], axis=0))
        final_h.append(h)
        final_c.append(c)
    y, y_h, y_c = xp.stack(ys, axis=1), xp.stack(final_h), xp.stack(final_c)
    if spec.layout:
        y, y_h, y_c = y.transpose(2, 0, 1, 3), y_h.transpose(1, 0, 2), y_c.transpose(1, 0, 2)
    outputs = [y, y_h] + ([y_c] if spec.op == RNNOperation.LSTM else [])
    return [xp.ascontiguousarray(o).astype(out_dtype, copy=False) for o in outputs]


register_layer(LayerType.RNN_V2, _infer, _compute)


# ---------------------------------------------------------------------------------------------------- ONNX import

# ONNX activation name (lower case: onnxruntime reads them case-insensitively) -> type, then per parameter (alpha,
# beta): what the layer uses when activation_alpha / activation_beta give none — the ONNX operator's default
# (ONNX says so), MISSING where that operator has none (ScaledTanh: refused rather than guessed), or None for a
# parameter the function does not read (it takes no value from the lists). Our SOFTPLUS is alpha*softplus(beta*x).
MISSING = object()
_ONNX_ACTIVATIONS = {
    "relu": (Act.RELU, None, None),
    "tanh": (Act.TANH, None, None),
    "sigmoid": (Act.SIGMOID, None, None),
    "leakyrelu": (Act.LEAKY_RELU, 0.01, None),
    "thresholdedrelu": (Act.THRESHOLDED_RELU, 1.0, None),
    "scaledtanh": (Act.SCALED_TANH, MISSING, MISSING),
    "hardsigmoid": (Act.HARD_SIGMOID, 0.2, 0.5),
    "elu": (Act.ELU, 1.0, None),
    "softsign": (Act.SOFTSIGN, None, None),
    "softplus": (Act.SOFTPLUS, None, None),
}
_FIXED_PARAMS = {Act.SOFTPLUS: (1.0, 1.0)}
_REFUSED_ACTIVATIONS = {"affine": "TensorRT has no affine activation"}
_DIRECTIONS = {"forward": RNNDirection.FORWARD, "reverse": RNNDirection.REVERSE,
               "bidirectional": RNNDirection.BIDIRECTIONAL}


def _onnx_activations(ctx, op: RNNOperation, directions: int) -> dict[str, list]:
    """activations / activation_alpha / activation_beta as layer params. ONNX hands the alphas and betas out in
    order to the activations that take one; the others keep their ONNX operator defaults."""
    count = ACTIVATIONS_PER_DIRECTION[op]
    names = ctx.attr("activations")
    if names is None:
        names = [a.value for a in DEFAULT_ACTIVATIONS[op]] * directions
        return {"activations": names, "activation_alpha": [0.0] * len(names), "activation_beta": [0.0] * len(names)}
    if len(names) != count * directions:
        ctx.unsupported(f"attribute 'activations' lists {len(names)} functions; {op.value} with {directions} "
                        f"direction(s) needs {count * directions} ({count} per direction)", UnsupportedCategory.OTHER)
    alphas, betas = list(ctx.attr("activation_alpha", [])), list(ctx.attr("activation_beta", []))
    types, layer_alphas, layer_betas = [], [], []
    for position, name in enumerate(names):
        key = name.lower()
        if key in _REFUSED_ACTIVATIONS:
            ctx.unsupported(f"attribute 'activations' [{position}] is {name!r}, which is not supported: "
                            f"{_REFUSED_ACTIVATIONS[key]}", UnsupportedCategory.ATTRIBUTE)
        if key not in _ONNX_ACTIVATIONS:
            ctx.unsupported(f"attribute 'activations' [{position}] is {name!r}, which is not a supported activation "
                            f"(supported: {', '.join(sorted(_ONNX_ACTIVATIONS))}, case-insensitive)",
                            UnsupportedCategory.ATTRIBUTE)
        kind, *defaults = _ONNX_ACTIVATIONS[key]
        values = list(_FIXED_PARAMS.get(kind, (0.0, 0.0)))
        for index, (default, given, attribute) in enumerate(zip(defaults, (alphas, betas),
                                                                 ("activation_alpha", "activation_beta"))):
            if default is None:
                continue
            if given:
                values[index] = float(given.pop(0))
            elif default is MISSING:
                ctx.unsupported(f"attribute '{attribute}' gives no value for activations[{position}] ({name}), "
                                "whose ONNX operator has no default", UnsupportedCategory.ATTRIBUTE)
            else:
                values[index] = default
        alpha, beta = values
        types.append(kind.value)
        layer_alphas.append(alpha)
        layer_betas.append(beta)
    return {"activations": types, "activation_alpha": layer_alphas, "activation_beta": layer_betas}


def _import_recurrent(ctx, op: RNNOperation) -> list:
    direction_name = ctx.attr("direction", "forward")
    if direction_name not in _DIRECTIONS:
        ctx.unsupported(f"attribute 'direction' is {direction_name!r}; expected forward, reverse or bidirectional",
                        UnsupportedCategory.ATTRIBUTE)
    direction = _DIRECTIONS[direction_name]
    directions = 2 if direction == RNNDirection.BIDIRECTIONAL else 1
    inputs = [ctx.input(i) for i in range(min(ctx.num_inputs, 8 if op == RNNOperation.LSTM else 6))]
    if ctx.num_inputs > len(inputs) and any(ctx.input(i) is not None for i in range(len(inputs), ctx.num_inputs)):
        ctx.unsupported(f"{op.value} takes at most {len(inputs)} inputs, got {ctx.num_inputs}",
                        UnsupportedCategory.OTHER)
    for position, name in ((0, "X"), (1, "W"), (2, "R")):
        if position >= len(inputs) or inputs[position] is None:
            ctx.unsupported(f"input {name} is missing", UnsupportedCategory.OTHER)
    x, r = inputs[0], inputs[2]
    for position, tensor in enumerate(inputs):
        if tensor is not None and position != 4 and not tensor.dtype.is_floating:
            ctx.unsupported(f"input {INPUT_NAMES[position]} ('{tensor.name}') has data type {tensor.dtype.value}; "
                            f"{op.value} takes float16/float32/float64", UnsupportedCategory.DTYPE)
    lengths = inputs[4] if len(inputs) > 4 else None
    if lengths is not None:
        if lengths.dtype != DataType.INT32:
            ctx.unsupported(f"input sequence_lens ('{lengths.name}') has data type {lengths.dtype.value}; ONNX "
                            "requires INT32", UnsupportedCategory.DTYPE)
        if lengths.shape is None or len(lengths.shape) != 1:
            ctx.unsupported(f"input sequence_lens ('{lengths.name}') has shape "
                            f"{None if lengths.shape is None else list(lengths.shape)}; expected [batch]",
                            UnsupportedCategory.OTHER)
    hidden = ctx.attr("hidden_size")
    if hidden is None:
        if r.shape is None or len(r.shape) != 3 or r.shape[2] < 1:
            ctx.unsupported("attribute 'hidden_size' is missing and R's shape does not give it",
                            UnsupportedCategory.ATTRIBUTE)
        hidden = r.shape[2]
    if hidden < 1:
        ctx.unsupported(f"attribute 'hidden_size' is {hidden}; it must be positive", UnsupportedCategory.ATTRIBUTE)
    layout = ctx.attr("layout", 0)
    if layout not in (0, 1):
        ctx.unsupported(f"attribute 'layout' is {layout}; expected 0 or 1", UnsupportedCategory.ATTRIBUTE)
    clip = ctx.attr("clip")
    if clip is not None and not clip > 0:
        ctx.unsupported(f"attribute 'clip' is {clip}; it must be positive", UnsupportedCategory.ATTRIBUTE)
    input_forget = bool(ctx.attr("input_forget", 0)) if op == RNNOperation.LSTM else False
    linear_before_reset = bool(ctx.attr("linear_before_reset", 0)) if op == RNNOperation.GRU else False
    layer = ctx.network.add_rnn_v2(x, op, hidden, inputs[1], r, inputs[3] if len(inputs) > 3 else None,
                                   direction=direction, layout=int(layout), sequence_lens=lengths,
                                   initial_h=inputs[5] if len(inputs) > 5 else None,
                                   initial_c=inputs[6] if len(inputs) > 6 else None,
                                   peepholes=inputs[7] if len(inputs) > 7 else None, name=ctx.layer_name())
    layer.set_params({**_onnx_activations(ctx, op, directions), "clip": None if clip is None else float(clip),
                      "input_forget": input_forget, "linear_before_reset": linear_before_reset})
    infos = [None if t is None else TensorInfo(t.shape, t.dtype) for t in layer.inputs]
    if all(info is None or info.shape is not None for info in infos):
        _infer(layer, infos)  # the network infers leniently while it is built; mismatched inputs fail the node here
    return list(layer.outputs)


@onnx_op("LSTM", min_opset=7)
def import_lstm(ctx):
    return _import_recurrent(ctx, RNNOperation.LSTM)


@onnx_op("GRU", min_opset=7)
def import_gru(ctx):
    return _import_recurrent(ctx, RNNOperation.GRU)


@onnx_op("RNN", min_opset=7)
def import_rnn(ctx):
    return _import_recurrent(ctx, RNNOperation.RNN)
