"""`polyx inspect capability`: which nodes the engine supports, why not, and the graph partitioned accordingly.

Mounted by inspect_cmd. Without -o only the report is printed; with -o DIR the subgraphs and results.txt /
results.json are written there (DIR is created when its parent exists).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from surgeon.model_io import load_model
from surgeon.partition import analyze_capability, write_capability

from ..plugin_modules import load_plugin_modules
from .plugin_options import PluginsOption
from .surgeon_errors import surgeon_errors


def capability(
    model: Annotated[Path, typer.Argument(help="The ONNX model to analyze.")],
    output_dir: Annotated[Path | None, typer.Option("-o", "--output-dir", help="Write the supported/unsupported "
                          "subgraphs and results.txt/results.json here.")] = None,
    build: Annotated[bool, typer.Option("--build/--no-build", help="Also build each supported subgraph whose "
                     "input shapes are static, to catch what only the builder rejects.")] = True,
    plugins: PluginsOption = None,
) -> None:
    """Per node: can the engine take it (and why not); maximal supported/unsupported subgraphs as ONNX files.
    Nodes whose op type names a registered plugin (--plugins) count as supported."""
    load_plugin_modules(plugins)
    with surgeon_errors():
        report = analyze_capability(load_model(model), str(model), verify_build=build)
        written = write_capability(report, output_dir, input_path=model) if output_dir is not None else []
    if report.fully_supported:
        typer.echo(f"{model}: all {len(report.verdicts)} nodes are supported by the engine")
        return
    typer.echo(report.to_text())
    for path in written:
        typer.echo(f"wrote {path}")
