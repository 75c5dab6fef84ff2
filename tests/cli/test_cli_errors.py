"""The CLI's error filter: every failure, expected or not, is one line on stderr and exit code 2; `--debug` adds
the traceback and keeps the code (docs/guarantees.md)."""
from __future__ import annotations

import pytest
from cli_test_models import make_mlp, run_cli

import polyx.cli.convert_cmd as convert_cmd


def explode(*args, **kwargs):
    raise ZeroDivisionError("boom in the builder")


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_exception_is_exit_2_with_one_line(tmp_path, capsys, monkeypatch, debug) -> None:
    model = make_mlp(tmp_path / "mlp.onnx")
    monkeypatch.setattr(convert_cmd, "build_engine", explode)
    code, out, err = run_cli(capsys, "convert", model, "-o", tmp_path / "mlp.plan", *(["--debug"] if debug else []))
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last == ("polyx: error: internal error: ZeroDivisionError: boom in the builder "
                    "(rerun with --debug for the traceback)")
    assert ("Traceback (most recent call last)" in err) is debug
    assert not (tmp_path / "mlp.plan").exists()


@pytest.mark.parametrize("debug", [False, True])
def test_an_expected_error_keeps_exit_2_under_debug(tmp_path, capsys, debug) -> None:
    code, _, err = run_cli(capsys, "convert", tmp_path / "missing.onnx", "-o", tmp_path / "x.plan",
                           *(["--debug"] if debug else []))
    assert code == 2
    assert err.strip().splitlines()[-1] == f"polyx: error: {tmp_path / 'missing.onnx'}: no such file"
    assert ("Traceback" in err) is debug


def test_an_os_error_names_the_file(tmp_path, capsys) -> None:
    folder = tmp_path / "a_folder.onnx"
    folder.mkdir()
    code, _, err = run_cli(capsys, "inspect", "model", folder)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("polyx: error: ") and str(folder) in err
