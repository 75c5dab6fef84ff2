"""Terminal reports for `polyx run` and `polyx convert`. Plain lines: readable in a terminal, greppable in CI logs.

`format_run_result` always ends with a `RESULT: PASSED` / `RESULT: FAILED` line; with intermediate tensors the
first failing tensor in topological order gets one line `First divergence: TENSOR (node NAME, op OP) ...`.
"""
from __future__ import annotations

import math

from ..build import BuildReport
from ..compare import TensorComparison
from ..compare.engine_layers import EngineLayerReport
from ..compare.engine_stream import StreamStats
from ..compare.layerwise import LayerwiseReport, TensorVerdict
from ..compare.statistics import TensorStats
from ..run_session import RunResult


def num(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4g}"


def _at(index: tuple[int, ...]) -> str:
    return f" at {tuple(index)}" if index else ""


def format_stats(stats: TensorStats) -> str:
    text = (f"mean={num(stats.mean)}, std={num(stats.std)}, min={num(stats.min)}{_at(stats.min_index)}, "
            f"max={num(stats.max)}{_at(stats.max_index)}, median={num(stats.median)}")
    if stats.nan_count or stats.inf_count:
        text += f", {stats.nan_count} NaN, {stats.inf_count} Inf"
    return text


def format_comparison(c: TensorComparison, verbose: bool = False) -> list[str]:
    width = max(len(c.reference_runner), len(c.candidate_runner), len("rel diff"))
    lines = [f"Comparing '{c.name}' (iteration {c.iteration}): {c.reference_runner} {c.reference_dtype} "
             f"{c.reference_shape} vs {c.candidate_runner} {c.candidate_dtype} {c.candidate_shape}"]
    if c.reference_dtype != c.candidate_dtype:
        lines.append(f"  note: dtypes differ ({c.reference_dtype} vs {c.candidate_dtype}); compared as float64")
    lines.append(f"  {c.reference_runner:<{width}} | {format_stats(c.reference_stats)}")
    lines.append(f"  {c.candidate_runner:<{width}} | {format_stats(c.candidate_stats)}")
    stat = f"quantile {c.error_quantile:g}" if c.check_error_stat == "quantile" else c.check_error_stat
    tolerance = f"atol={num(c.atol)}, rtol={num(c.rtol)}, check {stat}"
    if c.candidate_name:
        lines.append(f"  note: {c.candidate_runner} names it '{c.candidate_name}'")
    if c.problem:
        lines.append(f"  FAILED | '{c.name}': {c.problem}")
        return lines
    if c.note:
        lines.append(f"  note: {c.note}")
    for label, diff in (("abs diff", c.absolute), ("rel diff", c.relative)):
        percentiles = ", ".join(f"p{p:g}={num(v)}" for p, v in diff.percentiles.items() if p != 50)
        lines.append(f"  {label:<{width}} | mean={num(diff.mean)}, median={num(diff.median)}, "
                     f"max={num(diff.max)}{_at(diff.max_index)}, {percentiles}")
    lines.append(f"  {'similar':<{width}} | cosine similarity={cosine_text(c.cosine_similarity)}, "
                 f"PSNR={num(c.psnr)} dB")
    if verbose and c.histogram:
        lines.append("  abs diff histogram (elements per decade):")
        lines += [f"    {row}" for row in c.histogram]
    lines.append(_verdict_line(c, tolerance))
    return lines


def cosine_text(value: float) -> str:
    """Cosine similarity with enough digits to tell 0.999999 from 1."""
    return num(value) if math.isnan(value) else f"{value:.7g}"


def _verdict_line(c: TensorComparison, tolerance: str) -> str:
    status = "PASSED" if c.passed else "FAILED"
    if c.compare_func == "indices":
        what = "indices agree" if c.passed else f"{c.mismatches} index(es) missing or moved: {c.verdict_detail}"
        return f"  {status} | '{c.name}': {what} (compare indices, index tolerance {c.index_tolerance})"
    if c.compare_func != "simple":
        return f"  {status} | '{c.name}': judged by the {c.compare_func}"
    needs = f"passes with atol >= {num(c.min_atol)} (keeping rtol) or rtol >= {num(c.min_rtol)} (keeping atol)"
    if c.passed:
        return f"  PASSED | '{c.name}': within tolerance ({tolerance}); {needs}"
    what = f"{c.mismatches} of {c.size} elements exceed both tolerances" if c.check_error_stat == "elemwise" \
        else f"the {c.check_error_stat} error exceeds both tolerances"
    return f"  FAILED | '{c.name}': {what} ({tolerance}); {needs}"


def _verdict_row(t: TensorVerdict) -> list[str]:
    return [str(t.index), t.name, t.op or "-", num(t.max_absolute), num(t.max_relative), num(t.min_atol),
            num(t.min_rtol), "PASSED" if t.passed else "FAILED"]


def format_table(header: list[str], rows: list[list[str]], max_width: int = 60) -> list[str]:
    rows = [[cell if len(cell) <= max_width else "..." + cell[-(max_width - 3):] for cell in row] for row in rows]
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    return ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header] + rows]


def format_layerwise(report: LayerwiseReport) -> list[str]:
    lines = [f"Per-tensor comparison: {report.compared_count} tensors compared, {report.failed_count} failed"]
    first = report.first_divergence
    if first is None:
        lines.append(f"First divergence: none (all {report.compared_count} compared tensors are within tolerance)")
    else:
        lines.append(f"First divergence: {first.name} (node {first.node or '?'}, op {first.op or '?'}) "
                     f"{_error_detail(first)}")
        for layer in report.engine_layers:
            lines.append(f"  engine layer: {layer}")
        lines += _input_lines(report.divergence_inputs)
        if report.error_created_at_divergence:
            lines.append("  every input is within tolerance: the error is created at this node")
        else:
            lines.append("  some inputs were not compared: the error may come from them")
    if report.worst:
        lines.append(f"Worst {len(report.worst)} tensors (by how far they exceed tolerance):")
        header = ["index", "tensor", "op", "max abs", "max rel", "needs atol", "needs rtol", "status"]
        lines += ["  " + row for row in format_table(header, [_verdict_row(t) for t in report.worst])]
    return lines


def format_engine_layers(report: EngineLayerReport, stats: StreamStats | None = None, verbose: int = 0,
                         shown_groups: int = 10) -> list[str]:
    """The engine-as-built view of `--mark-all`: per-layer counts, the first failing layer (precision and tactic
    included, so an INT8 layer is named as such), what each fused layer absorbed and what the builder removed."""
    provenance = report.provenance
    fused = provenance.fused_groups()
    line = (f"Engine layers as built: {len(provenance.layers)} layer(s), {len(fused)} fused, {len(report.layers)} "
            f"compared, {report.failed_count} failed")
    places = [p.where for p in provenance.placements.values()]
    line += (f"; ONNX tensors: {places.count('boundary')} at layer boundaries, {places.count('fused')} inside fused "
             f"layers, {places.count('quantized')} stored as INT8 (compared dequantized), {places.count('removed')} "
             "removed by the builder")
    if stats is not None and stats.chunks:
        line += (f"; streamed in {stats.chunks} chunk(s) per iteration, at most {_bytes(stats.peak_held_bytes)} of "
                 "reference tensors held")
    lines = [line]
    first = report.first_failing
    if first is None:
        lines.append(f"First failing engine layer: none (all {len(report.layers)} compared layers are within "
                     "tolerance)")
    else:
        worst = first.worst
        lines.append(f"First failing engine layer: {first.group.describe()} output '{worst.name}' "
                     f"{_error_detail(worst)}")
        lines.append(f"  computes ONNX node(s): {', '.join(first.group.onnx_nodes) or '-'}")
        if first.group.absorbed:
            lines.append(f"  inside it (never stored): {', '.join(first.group.absorbed)}")
        lines += _input_lines(report.first_failing_inputs)
        if report.error_created_in_first_failing:
            lines.append("  every input is within tolerance: the error is created in this layer")
        else:
            lines.append("  some inputs exceed tolerance or were not compared: the error may come from them")
    verdicts = {layer.group.name: layer for layer in report.layers}
    limit = len(fused) if verbose else shown_groups
    for group in fused[:limit]:
        at = verdicts.get(group.name)
        state = "not compared" if at is None else \
            f"{'PASSED' if at.passed else 'FAILED'}, max abs {num(at.max_absolute)}"
        lines.append(f"Inside fused layer {group.name} ({group.label}): {', '.join(group.absorbed)} (compared at "
                     f"{', '.join(group.outputs)}: {state})")
    if len(fused) > limit:
        lines.append(f"... and {len(fused) - limit} more fused layer(s) (-v lists them)")
    removed = provenance.removed()
    if removed:
        lines.append(f"Removed by the builder (no layer computes them): {', '.join(removed[:10])}"
                     f"{f' and {len(removed) - 10} more' if len(removed) > 10 else ''}")
    return lines


def format_run_result(result: RunResult, verbose: int = 0) -> list[str]:
    lines = []
    for run in result.outputs:
        mean_ms = sum(run.inference_ms) / max(len(run.inference_ms), 1)
        lines.append(f"{run.runner}: {len(run.iterations)} iteration(s), {mean_ms:.2f} ms per inference, "
                     f"{len(run.iterations[0]) if run.iterations else 0} output tensor(s)")
    if result.reference is None:
        for run in result.outputs:
            for name in result.model_outputs:
                if run.iterations and name in run.iterations[0]:
                    array = run.iterations[0][name]
                    lines.append(f"  {run.runner} '{name}' {array.dtype} {tuple(array.shape)} | "
                                 f"{format_stats(TensorStats.of(array))}")
    intermediates = result.layerwise is not None and result.layerwise.compared_count > len(result.model_outputs)
    for comparison in result.comparisons:
        if verbose or not intermediates or comparison.name in result.model_outputs:
            lines += format_comparison(comparison, verbose=verbose > 0)
    if intermediates:
        first = result.layerwise.first_divergence
        detailed = [c for c in result.comparisons if first is not None and c.name == first.name and not c.passed]
        if detailed and not verbose and first.name not in result.model_outputs:
            lines += format_comparison(detailed[0])
        lines += format_layerwise(result.layerwise)
    if result.engine_layers is not None:
        lines += format_engine_layers(result.engine_layers, result.stream_stats, verbose=verbose)
    lines += [f"note: {note}" for note in result.notes]
    lines += [f"VALIDATION FAILED | {failure}" for failure in result.validation_failures]
    compared = len({c.name for c in result.comparisons})
    failed = sum(not c.passed for c in result.comparisons)
    summary = f"{compared} tensor(s) compared" if result.reference else "nothing compared"
    if result.comparisons:
        summary += f" over {len({c.iteration for c in result.comparisons})} iteration(s) against {result.reference}"
    problems = []
    if failed:
        problems.append(f"{failed} of {len(result.comparisons)} comparisons failed")
    if result.validation_failures:
        problems.append(f"{len(result.validation_failures)} tensor(s) hold NaN/Inf")
    status = "PASSED" if result.passed else "FAILED"
    lines.append(f"RESULT: {status} ({summary}{'; ' + '; '.join(problems) if problems else ''})")
    return lines


def format_build_report(report: BuildReport) -> list[str]:
    lines = ["Build summary:",
             f"  layers: {report.onnx_nodes} ONNX nodes -> {report.layers_before} parsed layers (weights excluded) -> "
             f"{report.layers_after} device layers after optimization"
             f" (+ {report.host_layers} host shape layers)"]
    if report.marked_outputs:
        lines.append(f"  marked {report.marked_outputs} intermediate tensor(s) as outputs (never fused away)")
    done = [f"{name} {count}" for name, count in report.passes.items() if count]
    if done:
        lines.append(f"  passes: {', '.join(done)}")
    lines.append("  tactics by layer type:")
    for layer_type, counts in sorted(report.tactics_by_layer_type.items()):
        chosen = ", ".join(f"{tactic} x{count}" for tactic, count in counts.most_common())
        lines.append(f"    {layer_type}: {chosen}")
    memory = report.memory
    lines.append(f"  plan: {_bytes(report.plan_bytes)}, device {report.device}, activation memory "
                 f"{_bytes(memory.get('planned_peak_bytes', 0))} planned (naive {_bytes(memory.get('naive_bytes', 0))})"
                 f", workspace {_bytes(memory.get('workspace_bytes', 0))}")
    if report.timing_cache:
        lines.append(f"  timing cache: {report.timing_cache}")
    lines.append(f"  build time: {report.build_seconds:.2f} s")
    return lines


def _bytes(count: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def _error_detail(verdict) -> str:
    """How far a failing tensor is off, and what tolerance would pass it (or why it was not compared)."""
    return verdict.problem or (f"max abs error {num(verdict.max_absolute)}, max rel error "
                               f"{num(verdict.max_relative)}; needs atol >= {num(verdict.min_atol)} or rtol >= "
                               f"{num(verdict.min_rtol)}")


def _input_lines(items) -> list[str]:
    """One line per input of the layer or node where an error shows: its error, or why it was not compared."""
    lines = []
    for item in items:
        if item.verdict is None:
            lines.append(f"  input '{item.name}': {item.note}")
        else:
            v = item.verdict
            lines.append(f"  input '{item.name}': max abs error {num(v.max_absolute)}, max rel error "
                         f"{num(v.max_relative)} ({'within tolerance' if v.passed else 'FAILED'})")
    return lines
