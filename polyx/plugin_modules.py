"""`--plugins FILE.py`: load Python modules that register plugins with `engine.register_plugin` (Polygraphy's
`--plugins` loads TensorRT plugin libraries; ours are Python, so a plugin is a module, imported once per process)."""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import PolyxError

_LOADED: dict[Path, str] = {}


def load_plugin_modules(paths: Sequence[Path] | None) -> list[str]:
    """Import each file (once per process); returns the module names. Errors name the file and what went wrong."""
    names = []
    for path in paths or []:
        path = Path(path)
        resolved = path.resolve()
        if resolved in _LOADED:
            names.append(_LOADED[resolved])
            continue
        if not path.is_file():
            raise PolyxError(f"--plugins {path}: no such file")
        if path.suffix != ".py":
            raise PolyxError(f"--plugins {path}: polyx plugins are Python modules (.py) that call "
                             "engine.register_plugin; TensorRT plugin libraries (.so) do not run on this engine")
        name = f"polyx_plugins_{path.stem}_{hashlib.sha256(str(resolved).encode()).hexdigest()[:8]}"
        spec = importlib.util.spec_from_file_location(name, resolved)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - user code: any exception, reported with the file named
            del sys.modules[name]
            where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) else ""
            raise PolyxError(f"--plugins {path}: importing it failed{where}: {type(exc).__name__}: {exc}") from None
        _LOADED[resolved] = name
        names.append(name)
    return names


def loaded_modules() -> dict[Path, str]:
    """{resolved path: module name} of the plugin files this process imported."""
    return dict(_LOADED)


def forget_modules_loaded_since(earlier: dict[Path, str]) -> None:
    """Forget files imported after `earlier` (so a later `--plugins` imports them again): the test suite's hook."""
    for path in set(_LOADED) - set(earlier):
        sys.modules.pop(_LOADED.pop(path), None)
