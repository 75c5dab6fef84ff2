"""`inspect model` accepts ONNX models and polyx plans: the file's first bytes say which it is."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.plan_file import is_plan_file
from engine.timing_cache import MAGIC as TIMING_CACHE_MAGIC

from ..errors import PolyxError
from .model import describe_onnx, onnx_blocks
from .plan import describe_plan, plan_blocks
from .render import Block

SHOW_CHOICES = ("layers", "attrs", "weights")


def parse_show(values: list[str]) -> set[str]:
    """`--show layers --show attrs` and `--show layers,attrs` both work."""
    show = {part.strip() for value in values for part in value.split(",") if part.strip()}
    unknown = sorted(show - set(SHOW_CHOICES))
    if unknown:
        raise PolyxError(f"--show: unknown value {', '.join(repr(u) for u in unknown)} "
                         f"(expected {', '.join(SHOW_CHOICES)})")
    return show


def require_file(path: Path) -> Path:
    if path.is_dir():
        raise PolyxError(f"{path}: is a directory, expected a file")
    if not path.is_file():
        raise PolyxError(f"{path}: no such file")
    return path


def describe_model_file(path: str | Path, show: set[str]) -> dict[str, Any]:
    path = require_file(Path(path))
    with open(path, "rb") as f:
        is_timing_cache = f.read(len(TIMING_CACHE_MAGIC)) == TIMING_CACHE_MAGIC
    if is_timing_cache:
        raise PolyxError(f"{path}: is a polyx timing cache, not an ONNX model or plan")
    if is_plan_file(path):
        return describe_plan(path, show)
    return describe_onnx(path, show)


def model_blocks(report: dict[str, Any]) -> list[Block]:
    return plan_blocks(report) if report["kind"] == "plan" else onnx_blocks(report)
