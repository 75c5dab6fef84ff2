"""The ONNX backend node conformance run (engine/conformance/runner.py) as a test: every case of every supported op
passes or is an explicitly listed expected failure, the list has no stale entry, and docs/operators.md matches
the registry."""
from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import pytest

from engine.conformance import runner
from engine.conformance.expected import EXPECTED_FAILURES, ExpectedFailure
from engine.conformance.runner import Status, run_conformance
from engine.enums import LayerType
from engine.ops.base import LAYER_IMPLS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operators.md"
# From the run that built the expected-failure list: a drop means ops were lost from the registry.
MIN_SUPPORTED_OPS = 122


@pytest.mark.slow
def test_every_case_of_every_supported_op_passes():
    report = run_conformance()
    problems = [f"{r.status.value}: {r.name} ({r.op}): {r.message[:300]}" for r in report.results
                if r.status in (Status.FAILED, Status.STALE)]
    problems += [f"stale: {name}: no such case" for name in report.unknown_expected]
    assert not problems, f"{len(problems)} conformance problems:\n" + "\n".join(problems)
    supported, _total = runner.supported_op_count()
    assert supported >= MIN_SUPPORTED_OPS


def test_expected_failures_have_reasons_and_pin_how_they_fail():
    for entry in EXPECTED_FAILURES.values():
        assert isinstance(entry, ExpectedFailure) and len(entry.reason) > 10
        re.compile(entry.fails_with)


def test_an_expected_failure_that_fails_another_way_fails_the_run(monkeypatch):
    name = "test_training_dropout"
    monkeypatch.setitem(EXPECTED_FAILURES, name, EXPECTED_FAILURES[name]._replace(fails_with="^IndexError"))
    report = run_conformance(ops=["Dropout"])
    result = next(r for r in report.results if r.name == name)
    assert result.status == Status.FAILED and "not as its expected-failure entry says" in result.message
    assert "training_mode must be a constant false" in result.message and not report.ok


def _docs_support_column(text: str) -> list[tuple[str, bool]]:
    rows = [line.split("|")[1:3] for line in text.splitlines() if re.match(r"\| [A-Za-z]", line)]
    return [(op.strip(), supported.strip() == "yes") for op, supported in rows if op.strip() != "ONNX op"]


def test_operators_doc_matches_registry():
    assert _docs_support_column(DOCS.read_text()) == runner.support_table(), (
        f"docs/operators.md is out of date: run `{runner.DOCS_COMMAND}`")


def test_render_docs_lists_every_default_domain_op():
    report = run_conformance(ops=["Abs"])
    text = runner.render_docs(report)
    assert _docs_support_column(text) == runner.support_table()
    assert re.search(r"^\| Abs \| yes \| UNARY \| 1 / 1 \|", text, re.MULTILINE)


def test_a_broken_kernel_is_caught(monkeypatch):
    impl = LAYER_IMPLS[LayerType.UNARY]

    def off_by_one(layer, inputs, xp):
        return [out + 1 for out in impl.compute(layer, inputs, xp)]

    monkeypatch.setitem(LAYER_IMPLS, LayerType.UNARY, dataclasses.replace(impl, compute=off_by_one))
    report = run_conformance(ops=["Abs", "Neg", "Add"])
    by_op = report.by_op()
    assert by_op["Abs"].failed == by_op["Abs"].total > 0
    assert by_op["Neg"].failed == by_op["Neg"].total > 0
    assert by_op["Add"].failed == 0 and by_op["Add"].passed == by_op["Add"].total
    assert not report.ok
    assert "Mismatched elements" in next(r.message for r in report.results if r.op == "Abs")


def test_a_stale_expected_failure_fails_the_run(monkeypatch):
    monkeypatch.setitem(EXPECTED_FAILURES, "test_abs", ExpectedFailure("listed on purpose by this test", "."))
    report = run_conformance(ops=["Abs"])
    assert [r.status for r in report.results] == [Status.STALE]
    assert not report.ok


def test_unsupported_cases_are_not_failures():
    report = run_conformance(ops=["Cast"])
    unsupported = [r for r in report.results if r.status == Status.UNSUPPORTED]
    assert unsupported and all("a type the engine lacks" in r.message for r in unsupported)
    assert report.failed == 0


def test_case_attribution_handles_underscored_ops_and_expansions():
    ops = runner.attribute_cases(runner.collect_cases())
    assert ops["test_reduce_log_sum_exp_do_not_keepdims_example"] == "ReduceLogSumExp"
    assert ops["test_reduce_log_sum_exp_do_not_keepdims_example_expanded"] == "ReduceLogSumExp"
    assert ops["test_layer_normalization_2d_axis0_expanded_ver18"] == "LayerNormalization"
    assert ops["test_globalaveragepool"] == "GlobalAveragePool"


def test_command_line_prints_totals(capsys):
    assert runner.main(["--ops", "Abs,Relu"]) == 0
    out = capsys.readouterr().out
    assert "Abs: 1 passed, 0 failed, 0 expected-fail (of 1)" in out
    assert re.search(r"^\d+ passed, 0 failed$", out, re.MULTILINE)
    assert re.search(r"^supported ops: \d+ of \d+ ONNX ops \(default domain\)$", out, re.MULTILINE)


def test_a_hanging_case_times_out(monkeypatch):
    impl = LAYER_IMPLS[LayerType.UNARY]

    def slow(layer, inputs, xp):
        time.sleep(2)
        return impl.compute(layer, inputs, xp)

    monkeypatch.setitem(LAYER_IMPLS, LayerType.UNARY, dataclasses.replace(impl, compute=slow))
    (result,) = run_conformance(ops=["Abs"], timeout_s=0.2).results
    assert result.status == Status.FAILED and "timed out" in result.message
