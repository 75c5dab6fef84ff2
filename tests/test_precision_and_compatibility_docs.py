"""The Python examples of docs/precision.md and docs/compatibility-and-profiling.md run as written from the
repository root (the CuPy example is marked gpu), and print what the docs say they print."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(doc: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "docs" / doc).read_text(), re.DOTALL)


def run_block(code: str, monkeypatch) -> str:
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<doc example>", "exec"), {"__name__": "__doc_example__"})
    return out.getvalue()


def test_precision_examples(monkeypatch) -> None:
    bf16, strongly_typed = python_blocks("precision.md")
    assert run_block(bf16, monkeypatch).strip() in ("{'BF16', 'FLOAT'}", "{'FLOAT', 'BF16'}")
    assert "'fc': 'HALF'" in run_block(strongly_typed, monkeypatch)


def test_compatibility_and_profiling_example(monkeypatch) -> None:
    record, _ = python_blocks("compatibility-and-profiling.md")
    out = run_block(record, monkeypatch)
    assert "'compute_capability': 'cpu'" in out and "'hardware_compatibility_level': 'AMPERE_PLUS'" in out
    assert "1 INVALID_ARGUMENT ShapeError: input 'input': shape (16, 3, 32, 32) is outside" in out


@pytest.mark.gpu
def test_gpu_allocator_example(monkeypatch) -> None:
    _, allocator = python_blocks("compatibility-and-profiling.md")
    run_block(allocator, monkeypatch)
