"""ONNX conformance runner and whole-engine test helpers (`python -m engine.conformance`).

Nothing in the engine's production modules imports this package: it sits above the builder and the runtime and
drives them both, as a user would.
"""
from .expected import EXPECTED_FAILURES
from .harness import build_engine_for_feeds, parse_onnx, run_onnx
from .runner import (
    DOCS_COMMAND,
    CaseResult,
    ConformanceReport,
    OpSummary,
    Status,
    attribute_cases,
    collect_cases,
    format_report,
    main,
    render_docs,
    run_case,
    run_conformance,
    support_table,
    supported_op_count,
)

__all__ = [
    "DOCS_COMMAND", "EXPECTED_FAILURES", "CaseResult", "ConformanceReport", "OpSummary", "Status", "attribute_cases",
    "build_engine_for_feeds", "collect_cases", "format_report", "main", "parse_onnx", "render_docs", "run_case",
    "run_conformance", "run_onnx", "support_table", "supported_op_count",
]
