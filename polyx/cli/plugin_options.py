"""The `--plugins` option of commands that parse models or load plans without the shared build flags."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

PluginsOption = Annotated[list[Path] | None, typer.Option(
    "--plugins", help="Python modules that register plugins (engine.register_plugin), loaded first (several values "
                      "after one flag).")]
