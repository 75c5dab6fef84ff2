"""The HTML report's per-engine-layer error chart (`--mark-all`): one bar per compared layer of the engine as
built, in execution order, its height the relative error its worst output needs to pass (log scale), red when it
fails; fused layers carry their group label (conv+bn+relu) under the bar and every bar a tooltip naming the layer,
its precision and tactic, and the ONNX tensors it absorbed."""
from __future__ import annotations

import html

from ..compare.engine_layers import EngineLayerReport, layer_error
from .log_axes import log_error_axes
from .text import num


def layer_error_chart(report: EngineLayerReport, width: int = 960, height: int = 380) -> str:
    layers = report.layers
    rtol = layers[0].worst.rtol if layers else 1e-5
    errors = [layer_error(layer) for layer in layers]
    axes, svg = log_error_axes(errors, rtol, width, height, bottom=110, label="per engine layer error")
    left, top, plot_w, plot_h, y_of = axes.left, axes.top, axes.plot_w, axes.plot_h, axes.y
    slot = plot_w / max(len(layers), 1)
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
