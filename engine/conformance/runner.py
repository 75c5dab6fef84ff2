"""ONNX backend node conformance: run the node test cases that the onnx wheel ships through the engine on CPU.

`onnx.backend.test.case.node.collect_testcases()` yields every case as a model plus inputs and expected outputs.
Each case is attributed to the op it tests: the op type of its single node, or for a function expansion
(`..._expanded`, `..._expanded_verNN`: the op's function body, several nodes) the op of the case it expands.
Expansions are counted under their op (they exercise the body's ops, which must pass too) and marked with
`expanded=True` in the results.

A case runs when the parser has an importer for every node of its model (in the opset the model imports) and its
graph inputs/outputs are plain tensors; otherwise it is *unsupported*, with the reason. A case that runs either
passes (every output has the expected dtype and shape, floats within the case's rtol/atol, everything else exactly
equal) or fails; a failure is *expected* only when `engine.conformance.expected.EXPECTED_FAILURES` lists it with a
reason. An expected failure that passes is a *stale* entry, which fails the run just as an unexpected failure does.

    python -m engine.conformance [--ops Add,Conv] [--verbose] [--write-docs docs/operators.md]
"""
from __future__ import annotations

import argparse
import functools
import re
import signal
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..dtypes import BFLOAT16, is_supported_onnx
from ..onnx_parser import supported_onnx_ops
from ..ops.base import ONNX_IMPORTERS
from .expected import EXPECTED_FAILURES
from .harness import parse_onnx, run_onnx

DOCS_COMMAND = "python -m engine.conformance --write-docs docs/operators.md"
_EXPANDED = re.compile(r"_expanded(_ver\d+)?$")
_DEFAULT_CASE_TIMEOUT_S = 60.0


class Status(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    EXPECTED_FAIL = "expected-fail"
    STALE = "stale"  # listed as an expected failure, but passes
    UNSUPPORTED = "unsupported"


@dataclass
class CaseResult:
    name: str
    op: str
    expanded: bool
    status: Status
    message: str = ""
    seconds: float = 0.0
    layer_types: tuple[str, ...] = ()


@dataclass
class OpSummary:
    op: str
    passed: int = 0
    failed: int = 0
    expected_fail: int = 0
    stale: int = 0
    unsupported: int = 0
    total: int = 0
    layer_types: set[str] = field(default_factory=set)

    def line(self) -> str:
        text = f"{self.op}: {self.passed} passed, {self.failed} failed, {self.expected_fail} expected-fail " \
               f"(of {self.total})"
        extras = [f"{n} {what}" for n, what in ((self.unsupported, "unsupported"), (self.stale, "stale")) if n]
        return text + (f", {', '.join(extras)}" if extras else "")


@dataclass
class ConformanceReport:
    results: list[CaseResult]
    # Expected-failure entries that name no case of the installed onnx (checked on full runs only).
    unknown_expected: list[str] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def passed(self) -> int:
        # A stale entry's case passes; it is counted here and flagged separately.
        return self.count(Status.PASSED) + self.count(Status.STALE)

    @property
    def failed(self) -> int:
        return self.count(Status.FAILED)

    @property
    def stale(self) -> int:
        return self.count(Status.STALE) + len(self.unknown_expected)

    @property
    def ok(self) -> bool:
        """No unexpected failure and no stale expected-failure entry."""
        return not self.failed and not self.stale

    def by_op(self) -> dict[str, OpSummary]:
        summaries: dict[str, OpSummary] = {}
        for r in self.results:
            s = summaries.setdefault(r.op, OpSummary(r.op))
            s.total += 1
            s.layer_types.update(r.layer_types)
            if r.status == Status.PASSED:
                s.passed += 1
            elif r.status == Status.STALE:
                s.passed += 1
                s.stale += 1
            elif r.status == Status.FAILED:
                s.failed += 1
            elif r.status == Status.EXPECTED_FAIL:
                s.expected_fail += 1
            else:
                s.unsupported += 1
        return dict(sorted(summaries.items(), key=lambda kv: kv[0].lower()))


# ---------------------------------------------------------------------------------------------- collection
@functools.lru_cache(maxsize=1)
def collect_cases() -> tuple:
    """The onnx wheel's node test cases, generated once per process (a few seconds; the generators warn about
    their deliberate overflows, which are silenced)."""
    from onnx.backend.test.case import node

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return tuple(node.collect_testcases())


def _op_key(node: onnx.NodeProto) -> tuple[str, str]:
    return ("" if node.domain in ("", "ai.onnx") else node.domain, node.op_type)


def op_display_name(domain: str, op_type: str) -> str:
    return f"{domain}:{op_type}" if domain else op_type


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _op_from_name(case_name: str) -> str:
    """Longest schema op name that the case name starts with (as snake_case or lowercase); fallback only."""
    stem = case_name.removeprefix("test_")
    best, best_len = stem, 0
    for schema in onnx.defs.get_all_schemas():
        for spelling in (_snake(schema.name), schema.name.lower()):
            if (stem == spelling or stem.startswith(spelling + "_")) and len(spelling) > best_len:
                best, best_len = schema.name, len(spelling)
    return best


def attribute_cases(cases: Sequence) -> dict[str, str]:
    """case name -> display name of the op it tests."""
    ops: dict[str, str] = {}
    for case in cases:
        nodes = case.model.graph.node
        if len(nodes) == 1 and not _EXPANDED.search(case.name):
            ops[case.name] = op_display_name(*_op_key(nodes[0]))
    for case in cases:
        if case.name not in ops:
            ops[case.name] = ops.get(_EXPANDED.sub("", case.name)) or _op_from_name(_EXPANDED.sub("", case.name))
    return ops


# ---------------------------------------------------------------------------------------------- one case
def _all_nodes(graph: onnx.GraphProto) -> Iterable[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else attr.graphs:
                yield from _all_nodes(sub)


def unsupported_reason(model: onnx.ModelProto) -> str | None:
    """Why the parser cannot take this model at all, or None when it can try: an op without an importer (or
    outside the importer's opset range), a graph input/output that is not a tensor (sequence, optional, map), or
    one whose element type the engine has no DataType for (string, float8, 4- and 2-bit types:
    an engine-wide limit, not any op's, so it is decided here rather than listed case by case)."""
    opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}
    for node in _all_nodes(model.graph):
        key = _op_key(node)
        importer = ONNX_IMPORTERS.get(key)
        if importer is None:
            return f"op {op_display_name(*key)} is not supported"
        opset = opsets.get(key[0], 0)
        if opset < importer.min_opset or (importer.max_opset is not None and opset > importer.max_opset):
            return f"op {op_display_name(*key)} is not supported at opset {opset}"
    for value in [*model.graph.input, *model.graph.output]:
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            return f"a graph input or output is a {kind.removesuffix('_type')}, not a tensor"
        elem_type = value.type.tensor_type.elem_type
        if not is_supported_onnx(elem_type):
            return f"a graph input or output is {onnx.TensorProto.DataType.Name(elem_type)}, a type the engine lacks"
    return None


def compare_output(name: str, got, want: np.ndarray, rtol: float, atol: float) -> None:
    """Raise AssertionError unless `got` matches `want`: dtype and shape, floats within tolerance, else exactly."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.dtype != want.dtype:
        raise AssertionError(f"output '{name}': dtype {got.dtype}, expected {want.dtype}")
    if got.shape != want.shape:
        raise AssertionError(f"output '{name}': shape {got.shape}, expected {want.shape}")
    if want.dtype == BFLOAT16:  # compared as the float32 values they hold (NumPy's kind for bfloat16 is "V")
        got, want = got.astype(np.float32), want.astype(np.float32)
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"output '{name}'")
    else:
        np.testing.assert_array_equal(got, want, err_msg=f"output '{name}'")


class _CaseTimeout(BaseException):
    """A BaseException, so that no `except Exception` inside the engine turns it into another error."""


def _with_timeout(seconds: float | None, fn):
    """Run fn(), raising _CaseTimeout after `seconds` (SIGALRM: main thread on POSIX only, else no limit)."""
    if not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return fn()

    def on_alarm(signum, frame):
        raise _CaseTimeout(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _layer_types(model: onnx.ModelProto) -> tuple[str, ...]:
    """Layer types the parser turns the model's single node into (empty for multi-node models)."""
    if len(model.graph.node) != 1:
        return ()
    network = parse_onnx(model)
    return tuple(sorted({layer.type.value for layer in network.layers if layer.metadata.get("onnx_node")}))


def _as_array(value) -> np.ndarray:
    """Case data are arrays or, for some dtypes, TensorProtos."""
    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)


def _run_case(case) -> tuple[str | None, tuple[str, ...]]:
    """Failure message (None when every data set passes) and the layer types of the parsed node."""
    graph = case.model.graph
    initializers = {init.name for init in graph.initializer}
    input_names = [i.name for i in graph.input if i.name not in initializers]
    layer_types: tuple[str, ...] = ()
    try:
        layer_types = _layer_types(case.model)
        for inputs, expected in case.data_sets:
            feeds = {name: _as_array(value) for name, value in zip(input_names, inputs)}
            outputs = run_onnx(case.model, feeds)
            if len(expected) != len(graph.output):
                raise AssertionError(f"{len(expected)} expected outputs for {len(graph.output)} graph outputs")
            for out, want in zip(graph.output, expected):
                if out.name not in outputs:
                    raise AssertionError(f"output '{out.name}' is missing from the engine's outputs")
                compare_output(out.name, outputs[out.name], _as_array(want), case.rtol, case.atol)
    except Exception as exc:  # noqa: BLE001 - any exception is a failure of the case, reported with its message
        message = str(exc).strip() or repr(exc)
        return f"{type(exc).__name__}: {message}", layer_types
    return None, layer_types


def run_case(case, op: str, timeout_s: float | None = _DEFAULT_CASE_TIMEOUT_S) -> CaseResult:
    expanded = bool(_EXPANDED.search(case.name))
    reason = unsupported_reason(case.model)
    if reason is not None and case.name in EXPECTED_FAILURES:
        return CaseResult(case.name, op, expanded, Status.STALE, f"listed as an expected failure, but does not run "
                                                                 f"at all: {reason}")
    if reason is not None:
        return CaseResult(case.name, op, expanded, Status.UNSUPPORTED, reason)
    start = time.perf_counter()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            message, layer_types = _with_timeout(timeout_s, lambda: _run_case(case))
        except _CaseTimeout as exc:
            message, layer_types = str(exc), ()
    seconds = time.perf_counter() - start
    if case.name in EXPECTED_FAILURES:
        expected = EXPECTED_FAILURES[case.name]
        if not message:
            status, message = Status.STALE, f"passes, but is listed as an expected failure ({expected.reason})"
        elif not re.search(expected.fails_with, message, re.DOTALL):
            status, message = Status.FAILED, (f"fails, but not as its expected-failure entry says (a message matching "
                                              f"{expected.fails_with!r}): {message}")
        else:
            status = Status.EXPECTED_FAIL
    else:
        status = Status.FAILED if message else Status.PASSED
    return CaseResult(case.name, op, expanded, status, message or "", seconds, layer_types)


# ---------------------------------------------------------------------------------------------- whole run
def run_conformance(ops: Iterable[str] | None = None, cases: Sequence | None = None,
                    timeout_s: float | None = _DEFAULT_CASE_TIMEOUT_S) -> ConformanceReport:
    """Run every case (or those of `ops`, by display name) and return the per-case results."""
    cases = collect_cases() if cases is None else cases
    case_ops = attribute_cases(cases)
    wanted = {o.lower() for o in ops} if ops else None
    results = [run_case(case, case_ops[case.name], timeout_s) for case in cases
               if wanted is None or case_ops[case.name].lower() in wanted]
    unknown = sorted(set(EXPECTED_FAILURES) - set(case_ops)) if wanted is None else []
    return ConformanceReport(results, unknown)


def default_domain_schemas() -> dict[str, onnx.defs.OpSchema]:
    return {s.name: s for s in onnx.defs.get_all_schemas() if s.domain in ("", "ai.onnx")}


def supported_op_count() -> tuple[int, int]:
    """(default-domain ONNX ops with an importer, default-domain ONNX ops in the installed onnx)."""
    schemas = default_domain_schemas()
    return sum(("", name) in ONNX_IMPORTERS for name in schemas), len(schemas)


def format_report(report: ConformanceReport, verbose: bool = False) -> str:
    lines = []
    for summary in report.by_op().values():
        lines.append(summary.line())
        if verbose:
            for r in report.results:
                if r.op == summary.op and r.status in (Status.FAILED, Status.STALE, Status.UNSUPPORTED):
                    lines.append(f"    {r.status.value}: {r.name}: {_one_line(r.message, 400)}")
    if not verbose:
        problems = [r for r in report.results if r.status in (Status.FAILED, Status.STALE)]
        if problems:
            lines.append("")
            lines.extend(f"{r.status.value.upper()}: {r.name} ({r.op}): {_one_line(r.message, 200)}" for r in problems)
    lines.extend(f"STALE: {name}: listed as an expected failure, but no such case exists"
                 for name in report.unknown_expected)
    if verbose:
        slowest = sorted(report.results, key=lambda r: -r.seconds)[:5]
        lines.append("slowest cases: " + ", ".join(f"{r.name} ({r.seconds:.2f} s)" for r in slowest))
    supported, total_ops = supported_op_count()
    lines += ["", f"{report.passed} passed, {report.failed} failed",
              f"{report.count(Status.EXPECTED_FAIL)} expected failures, {report.count(Status.UNSUPPORTED)} "
              f"unsupported, {report.stale} stale expected-failure entries",
              f"supported ops: {supported} of {total_ops} ONNX ops (default domain)"]
    return "\n".join(lines)


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------- docs
def support_table() -> list[tuple[str, bool]]:
    """(op, supported) for every default-domain ONNX op, sorted by name: the registry's part of the docs."""
    return [(name, ("", name) in ONNX_IMPORTERS) for name in sorted(default_domain_schemas(), key=str.lower)]


def render_docs(report: ConformanceReport) -> str:
    schemas = default_domain_schemas()
    summaries = report.by_op()
    supported, total_ops = supported_op_count()
    lines = [
        "# ONNX operator support",
        "",
        f"Generated by `{DOCS_COMMAND}` (onnx {onnx.__version__}); do not edit by hand.",
        "",
        f"Supported ops: **{supported} of {total_ops}** ONNX ops of the default domain.",
        f"Conformance (ONNX backend node cases, CPU): {report.passed} passed, {report.failed} failed, "
        f"{report.count(Status.EXPECTED_FAIL)} expected failures, {report.count(Status.UNSUPPORTED)} unsupported "
        f"(of {len(report.results)}).",
        "",
        "A case counts under the op it tests. *Cases* are the op's own cases; *Expanded* are its function "
        "expansions (`..._expanded`: the op's function body as a graph of other ops, run whenever those ops are "
        "supported, even when the op itself is not). Both read passed / total; a case that does not pass failed, is "
        "an expected failure (reason in Notes, list in `engine/conformance/expected.py`), or does not run (its "
        "model uses an op or a value type the engine lacks).",
        "",
        "| ONNX op | Supported | Layer types | Cases | Expanded | Notes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, is_supported in support_table():
        summary = summaries.get(name)
        layers = ", ".join(sorted(summary.layer_types)) if summary else ""
        own, expanded = (_passed_of_total(report, name, flag) for flag in (False, True))
        lines.append(f"| {name} | {'yes' if is_supported else 'no'} | {layers} | {own} | {expanded} | "
                     f"{_notes(name, schemas[name], report, is_supported)} |")
    others = [op_display_name(*key) for key in supported_onnx_ops() if key[0]]
    if others:
        lines += ["", "Other domains: " + ", ".join(others) + "."]
    return "\n".join(lines) + "\n"


def _passed_of_total(report: ConformanceReport, op: str, expanded: bool) -> str:
    results = [r for r in report.results if r.op == op and r.expanded == expanded]
    passed = sum(r.status in (Status.PASSED, Status.STALE) for r in results)
    return f"{passed} / {len(results)}" if results else ""


def _notes(op: str, schema: onnx.defs.OpSchema, report: ConformanceReport, is_supported: bool) -> str:
    """Deprecation, then why cases do not pass: expected-failure reasons, failures, and (for a supported op)
    why some of its cases do not run."""
    notes = ["deprecated"] if schema.deprecated else []
    reasons: dict[str, int] = defaultdict(int)
    lacking_types: dict[str, int] = defaultdict(int)
    for r in report.results:
        if r.op != op:
            continue
        if r.status == Status.EXPECTED_FAIL:
            reasons[f"expected failure: {EXPECTED_FAILURES[r.name].reason}"] += 1
        elif r.status in (Status.FAILED, Status.STALE):
            reasons[f"{r.status.value.upper()}, see `python -m engine.conformance --ops {op} --verbose`"] += 1
        elif r.status == Status.UNSUPPORTED and is_supported:
            lacking = re.search(r"is (\w+), a type the engine lacks", r.message)
            if lacking:
                lacking_types[lacking.group(1)] += 1
            else:
                reasons[f"not run: {r.message}"] += 1
    notes += [f"{reason} ({n} case{'s' if n > 1 else ''})" for reason, n in reasons.items()]
    if lacking_types:
        notes.append("not run, types the engine lacks: " + ", ".join(f"{t} ({n})" for t, n in lacking_types.items()))
    return "; ".join(notes).replace("|", "\\|")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.conformance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", help="comma-separated ONNX op names to run (default: all)")
    parser.add_argument("--verbose", action="store_true", help="print every failure's and unsupported case's reason")
    parser.add_argument("--write-docs", metavar="PATH", help="write the generated operator table (needs a full run)")
    parser.add_argument("--case-timeout", type=float, default=_DEFAULT_CASE_TIMEOUT_S,
                        help="seconds one case may run before it counts as failed (0: no limit)")
    args = parser.parse_args(argv)
    if args.write_docs and args.ops:
        parser.error("--write-docs needs a full run; drop --ops")
    ops = [o.strip() for o in args.ops.split(",") if o.strip()] if args.ops else None
    start = time.perf_counter()
    report = run_conformance(ops, timeout_s=args.case_timeout or None)
    missing = sorted({o.lower() for o in ops or ()} - {r.op.lower() for r in report.results})
    if missing:
        parser.error(f"no cases for op(s): {', '.join(missing)}")
    print(format_report(report, args.verbose))
    print(f"({len(report.results)} cases in {time.perf_counter() - start:.1f} s)")
    if args.write_docs:
        Path(args.write_docs).write_text(render_docs(report))
        print(f"wrote {args.write_docs}")
    return 0 if report.ok else 1

