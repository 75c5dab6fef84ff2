"""The README runs as written on a fresh clone: its example models are the ones the committed script makes, and
every quick-start command (and the Python example) runs from the repository root with the outcome it promises."""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from polyx.cli.app import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _code_block(heading: str, language: str) -> str:
    """The first ```language block after the README heading `heading`."""
    text = README.read_text()
    start = text.index(heading)
    match = re.compile(rf"```{language}\n(.*?)```", re.DOTALL).search(text, start)
    assert match is not None, f"no ```{language} block after '{heading}'"
    return match[1]


def quick_start_commands() -> list[list[str]]:
    """The quick start's polyx commands as argument lists ($M expanded, continuations joined, comments dropped)."""
    script = _code_block("## Quick start (command line)", "bash").replace("\\\n", " ")
    variables: dict[str, str] = {}
    commands = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if len(words) == 1 and re.fullmatch(r"\w+=\S*", words[0]):
            name, _, value = words[0].partition("=")
            variables[name] = value
            continue
        assert words[0] == "polyx", f"quick start line is not a polyx command: {line}"
        commands.append([re.sub(r"\$(\w+)", lambda m: variables[m[1]], word) for word in words[1:]])
    return commands


@pytest.fixture
def clone_root(tmp_path, monkeypatch) -> Path:
    """A working directory that looks like the repository root of a fresh clone (examples/ only, no ../shared)."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _load_make_models():
    spec = importlib.util.spec_from_file_location("make_models", ROOT / "examples" / "make_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_example_models_are_what_the_script_writes(tmp_path):
    written = _load_make_models().write_models(tmp_path)
    assert [p.name for p in written] == ["cnn.onnx", "transformer.onnx", "custom_op.onnx"]
    for path in written:
        committed = ROOT / "examples" / "models" / path.name
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale: rerun examples/make_models.py"
        assert committed.stat().st_size < 1_000_000


def test_quick_start_uses_only_the_shipped_models():
    commands = quick_start_commands()
    assert len(commands) >= 10
    paths = [word for command in commands for word in command if word.endswith(".onnx") and "/" in word]
    assert paths and all(p.startswith("examples/models/") for p in paths), paths
    assert "shared" not in _code_block("## Quick start (command line)", "bash")


def test_quick_start_commands_run_as_written(clone_root, capsys):
    results = []
    for command in quick_start_commands():
        code = main(command)
        out, err = capsys.readouterr()
        results.append((command[:2], code, out, err))
        assert code == 0, f"polyx {' '.join(command)} -> exit {code}\n{out[-2000:]}\n{err[-2000:]}"
    outputs = {tuple(c): out for c, _, out, _ in results}
    assert "RESULT: PASSED" in outputs[("run", "examples/models/cnn.onnx")]
    assert "unsupported" in outputs[("inspect", "capability")] and "ClipNorm" in outputs[("inspect", "capability")]
    for written in ("report.html", "cnn.plan", "tc.cache", "clean.onnx", "good.json", "fp32_layers.json", "min.onnx"):
        assert (clone_root / written).is_file(), written
    saved = json.loads((clone_root / "results.json").read_text())
    assert saved["polygraphy_class"] == "RunResults" and [runner for runner, _ in saved["lst"]] == ["engine", "onnxrt"]
    assert any(p.name.startswith("supported") for p in (clone_root / "parts").iterdir())


def test_python_example_runs_as_written(clone_root):
    namespace: dict = {}
    exec(compile(_code_block("## The engine from Python", "python"), "README.md", "exec"), namespace)
    assert namespace["outputs"]["logits"].shape == (2, 10)
    bound = namespace["out"]  # the binding example's buffer: a CuPy array when the engine was built for the GPU
    bound = bound.get() if hasattr(bound, "get") else bound
    np.testing.assert_allclose(bound, namespace["outputs"]["logits"], rtol=1e-6, atol=1e-6)
    assert (clone_root / "cnn.plan").is_file()
