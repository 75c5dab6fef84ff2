"""A self-contained HTML report (inline CSS and SVG, no external assets): the per-layer error chart and the
comparison tables. The chart plots, for each compared tensor in topological order, the largest relative error
among elements whose absolute error exceeds atol (the relative error the check actually looks at) on a log
scale, with the rtol line: with the default element-wise check, a point above the line is a failed tensor.
"""
from __future__ import annotations

import html
import os

from ..compare.layerwise import TensorVerdict
from ..data.files import write_file
from ..run_session import RunResult
from .log_axes import log_error_axes
from .text import cosine_text, format_build_report, format_comparison, num

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0;
font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}
.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}pre{background:#f6f8fa;padding:1em;
overflow-x:auto;font-size:12px}.box{border-left:4px solid #cf222e;padding:.5em 1em;background:#fff5f5}
.ok{border-left-color:#1a7f37;background:#f4fff6}"""


def render_html(result: RunResult, title: str) -> str:
    status = "PASSED" if result.passed else "FAILED"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style>"
             f"</head><body><h1>{_e(title)}</h1>",
             f"<p>Result: <span class='{'pass' if result.passed else 'fail'}'>{status}</span>; reference "
             f"{_e(result.reference or 'none')}; runners: {_e(', '.join(r.runner for r in result.outputs))}; "
             f"{len(result.feeds)} iteration(s).</p>"]
    engine_layers = result.engine_layers
    if engine_layers is not None and engine_layers.layers:
        from .layer_chart import layer_error_chart, layer_table

        first = engine_layers.first_failing
        parts.append(f"<h2>Per engine layer error, as built ({len(engine_layers.layers)} layers compared, "
                     f"{engine_layers.failed_count} failed)</h2>" + layer_error_chart(engine_layers))
        if first is None:
            parts.append("<p class='box ok'>First failing engine layer: none.</p>")
        else:
            parts.append(f"<div class='box'><p><b>First failing engine layer: {_e(first.group.describe())}</b>: output "
                         f"{_e(first.worst.name)}, max abs error {num(first.worst.max_absolute)}, max rel error "
                         f"{num(first.worst.max_relative)}</p></div>")
        parts.append("<h2>Engine layers</h2>" + layer_table(engine_layers))
    layerwise = result.layerwise
    if layerwise is not None and layerwise.tensors:
        parts.append(f"<h2>Per-layer error ({layerwise.compared_count} tensors compared, {layerwise.failed_count} "
                     "failed)</h2>")
        parts.append(error_chart(layerwise.tensors))
        first = layerwise.first_divergence
        if first is None:
            parts.append("<p class='box ok'>First divergence: none: every compared tensor is within tolerance.</p>")
        else:
            inputs = "".join(f"<li>{_e(i.name)}: " + (_e(i.note) if i.verdict is None else
                             f"max abs {num(i.verdict.max_absolute)}, max rel {num(i.verdict.max_relative)} "
                             f"({'within tolerance' if i.verdict.passed else 'FAILED'})") + "</li>"
                             for i in layerwise.divergence_inputs)
            layers = "".join(f"<li>engine layer: {_e(layer)}</li>" for layer in layerwise.engine_layers)
            parts.append(f"<div class='box'><p><b>First divergence: {_e(first.name)}</b> (node {_e(first.node)}, op "
                         f"{_e(first.op)}): max abs error {num(first.max_absolute)}, max rel error "
                         f"{num(first.max_relative)}</p><ul>{layers}{inputs}</ul></div>")
        parts.append(f"<h2>Worst {len(layerwise.worst)} tensors</h2>" + _verdict_table(layerwise.worst))
        parts.append("<h2>All compared tensors (topological order)</h2>" + _verdict_table(layerwise.tensors))
    shown = [c for c in result.comparisons if c.name in result.model_outputs] or result.comparisons[:20]
    if shown:
        parts.append("<h2>Model outputs</h2>")
        parts += [f"<pre>{_e(chr(10).join(format_comparison(c, verbose=True)))}</pre>" for c in shown]
    if result.validation_failures:
        parts.append("<h2>Validation</h2><ul>" + "".join(f"<li class='fail'>{_e(f)}</li>"
                                                         for f in result.validation_failures) + "</ul>")
    if result.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in result.notes) + "</ul>")
    if result.build_report is not None:
        parts.append(f"<h2>Build</h2><pre>{_e(chr(10).join(format_build_report(result.build_report)))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(path: str | os.PathLike, result: RunResult, title: str) -> None:
    write_file(path, render_html(result, title))


def error_chart(tensors: list[TensorVerdict], width: int = 960, height: int = 340) -> str:
    """Inline SVG: x = tensor index (topological), y = log10 relative error; the dashed line is rtol."""
    rtol = tensors[0].rtol if tensors else 1e-5
    axes, svg = log_error_axes([t.min_rtol for t in tensors], rtol, width, height, bottom=50,
                               label="per-layer relative error")
    left, top, plot_w, plot_h, y_of = axes.left, axes.top, axes.plot_w, axes.plot_h, axes.y

    def x_of(index: int) -> float:
        return left + plot_w * (index + 0.5) / max(len(tensors), 1)

    for t in tensors:
        color = "#1a7f37" if t.passed else "#cf222e"
        label = f"#{t.index} {t.name} ({t.op}): rel {num(t.min_rtol)}, abs {num(t.max_absolute)}"
        svg.append(f"<circle cx='{x_of(t.index):.1f}' cy='{y_of(t.min_rtol):.1f}' r='3' fill='{color}'>"
                   f"<title>{_e(label)}</title></circle>")
    svg.append(f"<text x='{left + plot_w / 2}' y='{height - 12}' font-size='12' text-anchor='middle'>layer output "
               "index (topological order)</text>")
    svg.append(f"<text x='14' y='{top + plot_h / 2}' font-size='12' text-anchor='middle' transform='rotate(-90 14 "
               f"{top + plot_h / 2})'>max relative error (elements above atol)</text></svg>")
    return "".join(svg)


def _verdict_table(tensors: list[TensorVerdict]) -> str:
    rows = "".join(
        f"<tr><td>{t.index}</td><td>{_e(t.name)}</td><td>{_e(t.node)}</td><td>{_e(t.op)}</td>"
        f"<td>{num(t.max_absolute)}</td><td>{num(t.max_relative)}</td><td>{num(t.min_atol)}</td>"
        f"<td>{num(t.min_rtol)}</td><td>{cosine_text(t.min_cosine)}</td><td>{num(t.min_psnr)}</td>"
        f"<td class='{'pass' if t.passed else 'fail'}'>"
        f"{'PASSED' if t.passed else 'FAILED'}</td></tr>" for t in tensors)
    return ("<table><tr><th>index</th><th>tensor</th><th>node</th><th>op</th><th>max abs</th><th>max rel</th>"
            f"<th>needs atol</th><th>needs rtol</th><th>cosine similarity</th><th>PSNR dB</th><th>status</th></tr>"
            f"{rows}</table>")


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
