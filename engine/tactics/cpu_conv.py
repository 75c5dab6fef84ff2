"""CPU convolution tactics (NumPy; BLAS through xp.matmul). Each differs in algorithm, not in copy-paste:

- im2col_gemm: every window copied into a (C/G * prod(k), out pixels) matrix, one GEMM per group and sample.
- shift_gemm: one GEMM per kernel offset on a shifted view of the padded input, accumulated; at stride 1 the
  view is a plain slice of the flattened padded image (rows padded to the input width, cropped at the end), so
  nothing is copied but the padding.
- winograd_f2x2_3x3: 2-D 3x3 stride-1 convolutions in the Winograd domain: 16 GEMMs on 4x4 input tiles
  instead of 9 full ones (2.25x fewer multiplies), input/output transforms as strided adds.
- pointwise_gemm: 1x1 convolutions are a GEMM straight from the input into the output buffer.
- depthwise: groups == channels: per kernel offset, an input slice (clipped to valid taps, so no padding copy)
  times per-channel weights, accumulated; no GEMM at all.

All compute float16 layers in float32 and write float16 outputs. Weights are re-laid out once in `prepare`
from the constant kernel; convolutions whose kernel is a runtime tensor fall back to the reference tactic.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dtypes import DataType, nptype
from ..enums import LayerType
from ..ops.window import kernel_offsets, layer_window
from .base import Tactic, TacticContext, stable_tactic_id
from .registry import register_tactic
from .scratch import BufferSpec, carve, total_bytes


@dataclass(frozen=True)
class ConvGeometry:
    batch: int
    channels: int
    maps: int
    groups: int
    in_sizes: tuple[int, ...]
    kernel: tuple[int, ...]
    out_sizes: tuple[int, ...]
    pre: tuple[int, ...]
    post: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]

    @property
    def padded_sizes(self) -> tuple[int, ...]:
        """Input sizes after padding, exactly covering every window (crops inputs the windows never reach)."""
        return tuple((o - 1) * s + d * (k - 1) + 1
                     for o, s, d, k in zip(self.out_sizes, self.strides, self.dilations, self.kernel))

    @property
    def out_pixels(self) -> int:
        return math.prod(self.out_sizes)


@dataclass(frozen=True)
class KernelGeometry:
    """What laying out the weights needs: the kernel alone (maps, input channels = kernel C/G x groups). Not the
    input's shape: the runtime prepares from the plan's build-time shapes, where the input's channel dim may be
    dynamic (after a ShuffleNet channel shuffle's Reshape), so a layout read from it would fail at load."""

    maps: int
    channels: int
    groups: int


def conv_geometry(layer: Any, x_shape: tuple[int, ...], kernel_shape: tuple[int, ...]) -> ConvGeometry:
    kernel = tuple(kernel_shape[2:])
    out, pre, post = layer_window(layer, kernel, x_shape[2:])
    p = layer.params
    return ConvGeometry(x_shape[0], x_shape[1], kernel_shape[0], int(p["num_groups"]), tuple(x_shape[2:]), kernel,
                        tuple(out), tuple(pre), tuple(post), tuple(p["stride_nd"]), tuple(p["dilation_nd"]))


def compute_dtype(dtype: DataType) -> Any:
    return np.float64 if dtype == DataType.DOUBLE else np.float32


def copy_padded(dst: Any, x: Any, g: ConvGeometry) -> None:
    """dst (N, C, *padded_sizes) := x zero-padded by g.pre, cropped to what the windows read."""
    dst.fill(0)
    src, inner = [], []
    for size, p, total in zip(g.in_sizes, g.pre, g.padded_sizes):
        lo, hi = max(0, -p), min(size, total - p)
        src.append(slice(lo, hi))
        inner.append(slice(lo + p, hi + p))
    dst[(slice(None), slice(None), *inner)] = x[(slice(None), slice(None), *src)]


def window_view(padded: Any, g: ConvGeometry, xp: Any) -> Any:
    """(lead..., *kernel, *out) strided view of a padded array whose trailing dims are spatial."""
    n = len(g.kernel)
    lead = padded.shape[:-n]
    st = padded.strides[-n:]
    return xp.lib.stride_tricks.as_strided(
        padded, (*lead, *g.kernel, *g.out_sizes),
        (*padded.strides[:-n], *(s * d for s, d in zip(st, g.dilations)),
         *(s * k for s, k in zip(st, g.strides))))


class ConvTactic(Tactic):
    """Shared plumbing: eligibility checks, prepared weights, dtype staging and workspace carving."""

    layer_type = LayerType.CONVOLUTION
    backend = "cpu"

    def supports(self, ctx: TacticContext) -> bool | str:
        x, w = ctx.inputs[0], ctx.inputs[1]
        if not x.dtype.is_floating:
            return f"input data type {x.dtype.value} is not float"
        if w.value is None:
            return "the kernel is not a build-time constant"
        if len(ctx.inputs) > 2 and ctx.inputs[2] is not None and ctx.inputs[2].value is None:
            return "the bias is not a build-time constant"
        if x.shape is None or any(d < 0 for d in x.shape):
            return "the input shape is not concrete"
        return self.supports_geometry(conv_geometry(ctx.layer, x.shape, w.value.shape))

    def supports_geometry(self, g: ConvGeometry) -> bool | str:
        return True

    def geometry(self, ctx: TacticContext) -> ConvGeometry:
        return conv_geometry(ctx.layer, ctx.inputs[0].shape, ctx.inputs[1].value.shape)

    def prepare(self, ctx: TacticContext) -> dict:
        dtype = compute_dtype(ctx.inputs[0].dtype)
        w = np.asarray(ctx.inputs[1].value, dtype=dtype)
        bias = ctx.inputs[2].value if len(ctx.inputs) > 2 and ctx.inputs[2] is not None else None
        state = {"dtype": dtype, "kernel_shape": w.shape, "layer": ctx.layer, "geometry": {},
                 "bias": None if bias is None else np.asarray(bias, dtype=dtype).reshape(-1)}
        groups = int(ctx.layer.params["num_groups"])
        state.update(self.prepare_weights(w, KernelGeometry(w.shape[0], w.shape[1] * groups, groups)))
        return state

    def prepare_weights(self, w: np.ndarray, g: KernelGeometry) -> dict:
        return {}

    def scratch(self, g: ConvGeometry, dtype: Any) -> list[BufferSpec]:
        return []

    def _specs(self, g: ConvGeometry, in_dtype: Any, out_dtype: Any, dtype: Any) -> list[BufferSpec]:
        specs = list(self.scratch(g, dtype))
        specs.append(((g.batch, g.channels, *g.in_sizes) if in_dtype != dtype else (0,), dtype))
        specs.append(((g.batch, g.maps, *g.out_sizes) if out_dtype != dtype else (0,), dtype))
        return specs

    def workspace_bytes(self, ctx: TacticContext) -> int:
        in_dtype = nptype(ctx.inputs[0].dtype)
        dtype = compute_dtype(ctx.inputs[0].dtype)
        return total_bytes(self._specs(self.geometry(ctx), in_dtype, in_dtype, dtype))

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        x, out = inputs[0], outputs[0]
        dtype = state["dtype"]
        key = (x.shape, x.dtype, out.dtype)
        cached = state["geometry"].get(key)
        if cached is None:
            g = conv_geometry(state["layer"], x.shape, state["kernel_shape"])
            cached = state["geometry"][key] = (g, self._specs(g, x.dtype, out.dtype, dtype))
        g, specs = cached
        *buffers, x_stage, y_stage = carve(workspace, specs, xp)
        if x.dtype != dtype:
            xp.copyto(x_stage, x, casting="unsafe")
            x = x_stage
        y = out if out.dtype == dtype else y_stage
        self.convolve(state, g, x, y, buffers, xp)
        if y is not out:
            xp.copyto(out, y, casting="unsafe")

    def convolve(self, state: dict, g: ConvGeometry, x: Any, y: Any, buffers: list, xp: Any) -> None:
        raise NotImplementedError


def _add_bias(y: Any, bias: Any, n: int) -> None:
    if bias is not None:
        y += bias.reshape((-1,) + (1,) * n)


class Im2colGemm(ConvTactic):
    name = "cpu:conv:im2col_gemm"
    id = stable_tactic_id(name)
    heuristic_rank = 20

    def prepare_weights(self, w, g):
        return {"w": np.ascontiguousarray(w.reshape(g.groups, g.maps // g.groups, -1))}

    def scratch(self, g, dtype):
        cols = g.channels * math.prod(g.kernel)
        return [((g.channels, *g.padded_sizes), dtype), ((cols, g.out_pixels), dtype)]

    def convolve(self, state, g, x, y, buffers, xp):
        padded, cols = buffers
        w = state["w"]
        cols_view = cols.reshape(g.channels, *g.kernel, *g.out_sizes)
        for n in range(g.batch):
            copy_padded(padded[None], x[n:n + 1], g)
            xp.copyto(cols_view, window_view(padded, g, xp))
            y_n = y[n].reshape(g.groups, g.maps // g.groups, g.out_pixels)
            xp.matmul(w, cols.reshape(g.groups, -1, g.out_pixels), out=y_n)
        _add_bias(y, state["bias"], len(g.kernel))


class ShiftGemm(ConvTactic):
    name = "cpu:conv:shift_gemm"
    id = stable_tactic_id(name)
    heuristic_rank = 40

    def prepare_weights(self, w, g):
        taps = w.reshape(g.groups, g.maps // g.groups, g.channels // g.groups, -1)
        return {"w": np.ascontiguousarray(taps.transpose(3, 0, 1, 2))}  # (taps, G, K/G, C/G)

    @staticmethod
    def _wide(g: ConvGeometry) -> tuple[int, int]:
        """(padded image length incl. tail, wide output length) of the stride-1 flat-slice layout."""
        rest = math.prod(g.padded_sizes[1:])
        wide = g.out_sizes[0] * rest
        max_offset = sum((k - 1) * d * math.prod(g.padded_sizes[i + 1:])
                         for i, (k, d) in enumerate(zip(g.kernel, g.dilations)))
        return max(math.prod(g.padded_sizes), max_offset + wide), wide

    def scratch(self, g, dtype):
        if all(s == 1 for s in g.strides):
            length, wide = self._wide(g)
            return [((g.batch, g.channels, length), dtype), ((g.batch, g.maps, wide), dtype),
                    ((g.batch, g.maps, wide), dtype)]
        return [((g.batch, g.channels, *g.padded_sizes), dtype), ((g.batch, g.channels, g.out_pixels), dtype),
                ((g.batch, g.maps, g.out_pixels), dtype)]

    def convolve(self, state, g, x, y, buffers, xp):
        w, n = state["w"], len(g.kernel)
        cg, kg = g.channels // g.groups, g.maps // g.groups
        if all(s == 1 for s in g.strides):
            flat, acc, tmp = buffers
            _, wide = self._wide(g)
            pixels = math.prod(g.padded_sizes)
            flat[:, :, pixels:] = 0
            image = flat[:, :, :pixels].reshape(g.batch, g.channels, *g.padded_sizes)
            copy_padded(image, x, g)
            row = [math.prod(g.padded_sizes[i + 1:]) for i in range(n)]
            for t, offset in enumerate(kernel_offsets(g.kernel)):
                start = sum(o * d * r for o, d, r in zip(offset, g.dilations, row))
                src = flat[:, :, start:start + wide].reshape(g.batch, g.groups, cg, wide)
                dst = (acc if t == 0 else tmp).reshape(g.batch, g.groups, kg, wide)
                xp.matmul(w[t], src, out=dst)
                if t:
                    acc += tmp
            full = acc.reshape(g.batch, g.maps, g.out_sizes[0], *g.padded_sizes[1:])
            xp.copyto(y, full[(Ellipsis, *(slice(0, o) for o in g.out_sizes[1:]))])
        else:
            padded, taps, tmp = buffers
            copy_padded(padded, x, g)
            view = window_view(padded, g, xp)
            acc = y.reshape(g.batch, g.groups, kg, g.out_pixels)
            for t, offset in enumerate(kernel_offsets(g.kernel)):
                xp.copyto(taps.reshape(g.batch, g.channels, *g.out_sizes), view[(slice(None), slice(None), *offset)])
                src = taps.reshape(g.batch, g.groups, cg, g.out_pixels)
                xp.matmul(w[t], src, out=acc if t == 0 else tmp.reshape(acc.shape))
                if t:
                    acc += tmp.reshape(acc.shape)
        _add_bias(y, state["bias"], n)


# Winograd F(2x2, 3x3) transforms (Lavin & Gray): Y = A^T [(G g G^T) * (B^T d B)] A.
_WINO_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


class WinogradF2x2(ConvTactic):
    name = "cpu:conv:winograd_f2x2_3x3"
    id = stable_tactic_id(name)
    heuristic_rank = 45

    def supports_geometry(self, g):
        if len(g.kernel) != 2 or g.kernel != (3, 3):
            return "Winograd F(2x2,3x3) needs a 2-D 3x3 kernel"
        if g.strides != (1, 1) or g.dilations != (1, 1):
            return "Winograd F(2x2,3x3) needs stride 1 and dilation 1"
        if g.groups != 1:
            return "Winograd F(2x2,3x3) does not handle grouped convolutions"
        return True

    def prepare_weights(self, w, g):
        u = np.einsum("ai,kcij,bj->abkc", _WINO_G, w.astype(np.float64), _WINO_G)
        return {"u": np.ascontiguousarray(u.reshape(16, 1, g.maps, g.channels).astype(w.dtype))}

    @staticmethod
    def _tiles(g: ConvGeometry) -> tuple[int, int]:
        return -(-g.out_sizes[0] // 2), -(-g.out_sizes[1] // 2)

    def scratch(self, g, dtype):
        th, tw = self._tiles(g)
        tiles = th * tw
        return [((g.batch, g.channels, 2 * th + 2, 2 * tw + 2), dtype), ((4, 4, g.batch, g.channels, tiles), dtype),
                ((16, g.batch, g.channels, tiles), dtype), ((16, g.batch, g.maps, tiles), dtype),
                ((2, 4, g.batch, g.maps, tiles), dtype), ((g.batch, g.maps, 2 * th, 2 * tw), dtype)]

    def convolve(self, state, g, x, y, buffers, xp):
        th, tw = self._tiles(g)
        padded, rows, v, m, s, full = buffers
        tiled = ConvGeometry(g.batch, g.channels, g.maps, 1, g.in_sizes, g.kernel, (2 * th, 2 * tw), g.pre,
                             g.post, g.strides, g.dilations)
        copy_padded(padded, x, tiled)
        shape = (g.batch, g.channels, th, tw)

        def d(i, j):
            return padded[:, :, i:i + 2 * th:2, j:j + 2 * tw:2]

        # B^T d: combine tile rows i into transformed rows a (for each tile column j).
        for j in range(4):
            r = [rows[a, j].reshape(shape) for a in range(4)]
            xp.subtract(d(0, j), d(2, j), out=r[0])
            xp.add(d(1, j), d(2, j), out=r[1])
            xp.subtract(d(2, j), d(1, j), out=r[2])
            xp.subtract(d(1, j), d(3, j), out=r[3])
        # (B^T d) B: the same combination over columns, written into the 16 GEMM operands.
        for a in range(4):
            t = rows[a]
            xp.subtract(t[0], t[2], out=v[4 * a + 0])
            xp.add(t[1], t[2], out=v[4 * a + 1])
            xp.subtract(t[2], t[1], out=v[4 * a + 2])
            xp.subtract(t[1], t[3], out=v[4 * a + 3])
        xp.matmul(state["u"], v, out=m)
        mm = m.reshape(4, 4, g.batch, g.maps, th * tw)
        # A^T M A: rows first, then columns straight into the 2x2 output positions of every tile.
        for b in range(4):
            xp.add(mm[0, b], mm[1, b], out=s[0, b])
            s[0, b] += mm[2, b]
            xp.subtract(mm[1, b], mm[2, b], out=s[1, b])
            s[1, b] -= mm[3, b]
        out_shape = (g.batch, g.maps, th, tw)
        for r in range(2):
            sr = [s[r, b].reshape(out_shape) for b in range(4)]
            even, odd = full[:, :, r::2, 0::2], full[:, :, r::2, 1::2]
            xp.add(sr[0], sr[1], out=even)
            even += sr[2]
            xp.subtract(sr[1], sr[2], out=odd)
            odd -= sr[3]
        xp.copyto(y, full[:, :, :g.out_sizes[0], :g.out_sizes[1]])
        _add_bias(y, state["bias"], 2)


class PointwiseGemm(ConvTactic):
    name = "cpu:conv:pointwise_gemm"
    id = stable_tactic_id(name)
    heuristic_rank = 10

    def supports_geometry(self, g):
        if any(k != 1 for k in g.kernel):
            return "not a 1x1 convolution"
        if any(g.pre) or any(p > 0 for p in g.post):
            return "a padded 1x1 convolution is not a plain GEMM"
        return True

    def prepare_weights(self, w, g):
        return {"w": np.ascontiguousarray(w.reshape(g.groups, g.maps // g.groups, g.channels // g.groups))}

    def scratch(self, g, dtype):
        strided = any(s != 1 for s in g.strides) or g.padded_sizes != g.in_sizes
        return [((g.batch, g.channels, *g.out_sizes) if strided else (0,), dtype)]

    def convolve(self, state, g, x, y, buffers, xp):
        (picked,) = buffers
        if picked.size:
            xp.copyto(picked, x[(slice(None), slice(None), *(slice(0, (o - 1) * s + 1, s)
                                                              for o, s in zip(g.out_sizes, g.strides)))])
            x = picked
        src = xp.ascontiguousarray(x).reshape(g.batch, g.groups, g.channels // g.groups, g.out_pixels)
        xp.matmul(state["w"], src, out=y.reshape(g.batch, g.groups, g.maps // g.groups, g.out_pixels))
        _add_bias(y, state["bias"], len(g.kernel))


@dataclass(frozen=True)
class PhaseLayout:
    """A strided convolution as stride-1 ones: the padded input split into prod(stride) phase planes (every
    s-th pixel from offset p), each stored flat with rows of the plane's width. Kernel tap `o` then reads phase
    (o*d) % s from offset (o*d) // s, and every output row comes out as one contiguous slice of a plane: the
    'wide' output keeps the plane's row length and is cropped to the true width at the end."""

    phases: tuple[tuple[int, ...], ...]
    plane_sizes: tuple[int, ...]
    plane_length: int  # flat length incl. the tail the last taps' slices run into
    wide: int  # flat output length (first output dim x plane row lengths)
    taps: tuple[tuple[int, int], ...]  # per kernel offset: (phase index, start in the flat plane)


def phase_layout(g: ConvGeometry) -> PhaseLayout:
    phases = tuple(itertools.product(*(range(s) for s in g.strides)))
    plane = tuple(-(-p // s) for p, s in zip(g.padded_sizes, g.strides))
    rows = [math.prod(plane[i + 1:]) for i in range(len(plane))]
    wide = g.out_sizes[0] * rows[0]
    taps = []
    for offset in kernel_offsets(g.kernel):
        pos = [o * d for o, d in zip(offset, g.dilations)]
        phase = phases.index(tuple(q % s for q, s in zip(pos, g.strides)))
        taps.append((phase, sum((q // s) * r for q, s, r in zip(pos, g.strides, rows))))
    length = max(math.prod(plane), max(start for _, start in taps) + wide)
    return PhaseLayout(phases, plane, length, wide, tuple(taps))


def copy_phases(planes: Any, x: Any, g: ConvGeometry, layout: PhaseLayout) -> None:
    """planes (phases, N, C, plane_length) := the zero-padded input split into phase planes."""
    planes.fill(0)
    count = math.prod(layout.plane_sizes)
    for index, phase in enumerate(layout.phases):
        dst, src = [], []
        for p, s, size, pre, extent in zip(phase, g.strides, g.in_sizes, g.pre, layout.plane_sizes):
            first = max(0, -(-(pre - p) // s))  # first plane index whose padded position is inside the input
            last = min(extent - 1, (size - 1 + pre - p) // s)
            if last < first:
                break
            dst.append(slice(first, last + 1))
            start = p + first * s - pre
            src.append(slice(start, start + (last - first) * s + 1, s))
        else:
            plane = planes[index, :, :, :count].reshape(*planes.shape[1:3], *layout.plane_sizes)
            plane[(slice(None), slice(None), *dst)] = x[(slice(None), slice(None), *src)]


class Depthwise(ConvTactic):
    name = "cpu:conv:depthwise"
    id = stable_tactic_id(name)
    heuristic_rank = 10
    # Channels are processed in chunks whose working set stays in a core's L2 cache.
    chunk_bytes = 1 << 19

    def supports_geometry(self, g):
        if g.groups != g.channels or g.groups == 1:
            return "not a depthwise convolution (groups must equal the input channels)"
        return True

    def prepare_weights(self, w, g):
        multiplier = g.maps // g.channels
        taps = w.reshape(g.channels, multiplier, -1).transpose(2, 0, 1)  # (taps, C, M)
        return {"w": np.ascontiguousarray(taps[..., None]), "layout": {}}

    def scratch(self, g, dtype):
        layout = phase_layout(g)
        return [((len(layout.phases), g.batch, g.channels, layout.plane_length), dtype),
                ((g.batch, g.maps, layout.wide), dtype), ((g.batch, g.maps, layout.wide), dtype)]

    def convolve(self, state, g, x, y, buffers, xp):
        layout = state["layout"].get(g)
        if layout is None:
            layout = state["layout"][g] = phase_layout(g)
        planes, acc, tmp = buffers
        copy_phases(planes, x, g, layout)
        multiplier = g.maps // g.channels
        acc = acc.reshape(g.batch, g.channels, multiplier, layout.wide)
        tmp = tmp.reshape(acc.shape)
        weights = state["w"]
        row_bytes = g.batch * multiplier * layout.wide * acc.itemsize * 3
        chunk = max(1, self.chunk_bytes // max(row_bytes, 1))
        for c0 in range(0, g.channels, chunk):
            cs = slice(c0, c0 + chunk)
            a, t = acc[:, cs], tmp[:, cs]
            for index, (phase, start) in enumerate(layout.taps):
                src = planes[phase, :, cs, None, start:start + layout.wide]
                xp.multiply(src, weights[index, cs], out=a if index == 0 else t)
                if index:
                    a += t
        full = acc.reshape(g.batch, g.maps, g.out_sizes[0], *layout.plane_sizes[1:])
        cropped = full[(Ellipsis, *(slice(0, o) for o in g.out_sizes[1:]))]
        if state["bias"] is None:
            xp.copyto(y, cropped)
        else:
            xp.add(cropped, state["bias"].reshape((-1,) + (1,) * len(g.kernel)), out=y)


for _tactic in (Im2colGemm(), ShiftGemm(), WinogradF2x2(), PointwiseGemm(), Depthwise()):
    register_tactic(_tactic)
