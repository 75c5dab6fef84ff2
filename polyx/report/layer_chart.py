"""The HTML report's per-engine-layer error chart (`--mark-all`): one bar per compared layer of the engine as
built, in execution order, its height the relative error its worst output needs to pass (log scale), red when it
fails; fused layers carry their group label (conv+bn+relu) under the bar and every bar a tooltip naming the layer,
its precision and tactic, and the ONNX tensors it absorbed."""
from __future__ import annotations

import html
import math

from ..compare.engine_layers import EngineLayerReport, layer_error
from .text import num


def layer_error_chart(report: EngineLayerReport, width: int = 960, height: int = 380) -> str:
    layers = report.layers
    left, right, top, bottom = 70, 20, 20, 110
    plot_w, plot_h = width - left - right, height - top - bottom
    rtol = layers[0].worst.rtol if layers else 1e-5
    errors = [layer_error(layer) for layer in layers]
    finite = [e for e in errors if 0 < e < math.inf]
    lo = math.floor(math.log10(min(finite + [rtol or 1e-5]))) - 1
    hi = max(math.ceil(math.log10(max(finite + [rtol or 1e-5]))) + 1, lo + 2)

    def y_of(value: float) -> float:
        if value <= 0:
            return top + plot_h
        if math.isinf(value):
            return top
        return top + plot_h * (hi - min(max(math.log10(value), lo), hi)) / (hi - lo)

    slot = plot_w / max(len(layers), 1)
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
           "aria-label='per engine layer error'>",
           f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='#fafafa' stroke='#999'/>"]
    for decade in range(lo, hi + 1):
        y = y_of(10.0 ** decade)
        svg.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e5e5e5'/>"
                   f"<text x='{left - 6}' y='{y + 4:.1f}' font-size='11' text-anchor='end'>1e{decade}</text>")
    if rtol > 0:
        y = y_of(rtol)
        svg.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{y:.1f}' y2='{y:.1f}' stroke='#cf222e' "
                   f"stroke-dasharray='6,4'/><text x='{left + plot_w - 4}' y='{y - 4:.1f}' font-size='11' "
                   f"text-anchor='end' fill='#cf222e'>rtol {num(rtol)}</text>")
    first = report.first_failing
    for layer, error in zip(layers, errors):
        x = left + slot * layer.index
        y = y_of(error)
        colour = "#1a7f37" if layer.passed else "#cf222e"
        group = layer.group
        tip = f"{group.describe()}: needs rtol {num(error)}, max abs {num(layer.max_absolute)}"
        if group.absorbed:
            tip += f"; inside: {', '.join(group.absorbed)}"
        outline = " stroke='#000' stroke-width='2'" if layer is first else ""
        svg.append(f"<rect class='layer' x='{x + slot * 0.1:.1f}' y='{y:.1f}' width='{max(slot * 0.8, 1):.1f}' "
                   f"height='{top + plot_h - y:.1f}' fill='{colour}'{outline}><title>{_e(tip)}</title></rect>")
        if group.label:
            cx, cy = x + slot / 2, top + plot_h + 8
            svg.append(f"<text class='fused' x='{cx:.1f}' y='{cy}' font-size='9' text-anchor='end' "
                       f"transform='rotate(-60 {cx:.1f} {cy})'>{_e(group.label)}</text>")
    svg.append(f"<text x='{left + plot_w / 2}' y='{height - 6}' font-size='12' text-anchor='middle'>engine layers in "
               "execution order (fused groups labelled)</text>")
    svg.append(f"<text x='14' y='{top + plot_h / 2}' font-size='12' text-anchor='middle' transform='rotate(-90 14 "
               f"{top + plot_h / 2})'>relative error needed to pass</text></svg>")
    return "".join(svg)


def layer_table(report: EngineLayerReport) -> str:
    rows = "".join(
        f"<tr><td>{layer.index}</td><td>{_e(layer.group.name)}</td><td>{_e(layer.group.type)}</td>"
        f"<td>{_e(layer.group.label or '-')}</td><td>{_e(layer.group.precision)}</td><td>{_e(layer.group.tactic)}</td>"
        f"<td>{_e(', '.join(layer.group.absorbed) or '-')}</td><td>{num(layer.max_absolute)}</td>"
        f"<td>{num(layer_error(layer))}</td><td class='{'pass' if layer.passed else 'fail'}'>"
        f"{'PASSED' if layer.passed else 'FAILED'}</td></tr>" for layer in report.layers)
    return ("<table><tr><th>#</th><th>engine layer</th><th>type</th><th>fused</th><th>precision</th><th>tactic</th>"
            "<th>inside (not stored)</th><th>max abs</th><th>needs rtol</th><th>status</th></tr>"
            f"{rows}</table>")


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
