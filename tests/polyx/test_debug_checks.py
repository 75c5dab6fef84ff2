"""`--check` commands judged as Polygraphy does (--fail-code, --ignore-fail-code, --fail-regex), with exit codes 2
and 126/127 never counted as failures, and a command that names no candidate file refused before it runs."""
from __future__ import annotations

import pytest

from polyx.debug.checks import Artifacts, CommandCheck, fails_the_same_way
from polyx.errors import PolyxError


def _judge(command: str, **controls):
    return CommandCheck(command, **controls).judge(Artifacts())


@pytest.mark.parametrize("command, controls, passed", [
    ("exit 0", {}, True),
    ("exit 1", {}, False),
    ("exit 3", {"fail_codes": [3]}, False),
    ("exit 4", {"fail_codes": [3]}, True),          # only the --fail-code exit codes fail
    ("exit 0", {"fail_codes": [3]}, True),
    ("exit 5", {"ignore_fail_codes": [5]}, True),
    ("exit 1", {"ignore_fail_codes": [5]}, False),
    ("echo 'Segmentation fault' >&2; exit 1", {"fail_regex": ["Segmentation"]}, False),
    ("echo 'accuracy mismatch'; exit 1", {"fail_regex": ["Segmentation"]}, True),  # another kind of failure
    ("echo 'Segmentation fault'; exit 0", {"fail_regex": ["Segmentation"]}, True),  # exit 0 is never a failure
    ("echo 'Segmentation fault'; exit 4", {"fail_regex": ["Segm"], "fail_codes": [3]}, True),
])
def test_polygraphy_fail_controls(command, controls, passed):
    assert _judge(command, **controls).passed is passed


def test_exit_2_is_never_a_failure_and_126_127_are_errors():
    verdict = _judge("echo 'usage: tool FILE' >&2; exit 2")
    assert not verdict.passed and verdict.unusable
    assert verdict.summary == "check exited 2 (a usage error, not a failure): usage: tool FILE"
    with pytest.raises(PolyxError, match="could not find the command"):
        _judge("no_such_command_polyx_test")
    with pytest.raises(PolyxError, match="could not run the command"):
        _judge("exit 126")
    for code in (2, 126, 127):
        with pytest.raises(PolyxError, match="never count as failures"):
            CommandCheck("true", fail_codes=[code])


def test_same_failure_means_same_exit_code_and_first_error_line():
    first = _judge("echo 'out' ; echo 'error: no such file' >&2; echo more >&2; exit 1")
    assert first.signature == (1, "error: no such file")
    assert fails_the_same_way(first, _judge("echo 'error: no such file' >&2; exit 1"))
    assert not fails_the_same_way(first, _judge("echo 'error: other' >&2; exit 1"))
    assert not fails_the_same_way(first, _judge("echo 'error: no such file' >&2; exit 3"))
    assert not fails_the_same_way(first, _judge("exit 0"))


def test_placeholders_or_their_variables_are_required(tmp_path):
    with pytest.raises(PolyxError, match=r"names no candidate file: put \{model\}"):
        CommandCheck("polyx run polygraphy_debug.onnx").require(("{model}",), "why")
    CommandCheck("polyx run {model}").require(("{model}",), "why")
    CommandCheck("check.sh \"$POLYX_DEBUG_MODEL\"").require(("{model}",), "why")
    model = tmp_path / "a b.onnx"
    model.write_bytes(b"x")
    assert _judge_with(f"test -f {{model}} && test \"$POLYX_DEBUG_MODEL\" = '{model}'", model).passed


def _judge_with(command: str, model):
    return CommandCheck(command).judge(Artifacts(model=model))
