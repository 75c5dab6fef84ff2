"""Loading a function from a user's script given as FILE.py:FUNCTION (data loaders, compare functions): one place
that imports the file with importlib and names the script in every error."""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from engine.output_files import note_input

from .errors import PolyxError


def script_path(spec: str) -> Path | None:
    """The file of a FILE.py:FUNCTION spec (None when the spec has no file part)."""
    path_text = spec.rpartition(":")[0]
    return Path(path_text) if path_text else None


def load_function(spec: str, what: str) -> Callable:
    """The function FUNCTION of FILE.py (the user asked to run this script); `what` names it in errors, e.g.
    "data loader script"."""
    path_text, _, function = spec.rpartition(":")
    if not path_text or not function:
        raise PolyxError(f"{what} must be FILE.py:FUNCTION, got '{spec}'")
    path = Path(path_text)
    if not path.is_file():
        raise PolyxError(f"{what} {path}: no such file")
    note_input(path)
    module_spec = importlib.util.spec_from_file_location(f"polyx_user_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise PolyxError(f"{what} {path}: not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any error of the user's code is reported as theirs
        raise PolyxError(f"{what} {path}: importing it raised {type(exc).__name__}: {exc}") from None
    fn = getattr(module, function, None)
    if not callable(fn):
        raise PolyxError(f"{what} {path}: no function '{function}'")
    return fn
