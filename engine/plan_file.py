"""Whether a file is a polyx plan. Every command that accepts "an ONNX model or a plan" asks here, so they all
agree: the file's first bytes decide (a plan renamed to model.bin is still a plan, an ONNX model named x.plan is
still ONNX); the suffix decides only when the file cannot be read, so the caller reports the right kind of error."""
from __future__ import annotations

import os
from pathlib import Path

from .plan import MAGIC

PLAN_SUFFIXES = (".plan", ".engine", ".trt")


def is_plan_file(path: str | os.PathLike) -> bool:
    """True when `path` starts with the plan magic; for an unreadable path, when its suffix names a plan."""
    try:
        with open(path, "rb") as file:
            return file.read(len(MAGIC)) == MAGIC
    except OSError:
        return Path(path).suffix.lower() in PLAN_SUFFIXES
