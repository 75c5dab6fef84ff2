"""`polyx check`: static checks of a model. Exit code 1 when anything is found."""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from surgeon.lint import lint as lint_model

from .surgeon_errors import surgeon_errors

check_app = typer.Typer(name="check", help="Static checks of ONNX models.", no_args_is_help=True)


class LintFormat(str, Enum):
    text = "text"
    json = "json"


@check_app.command("lint")
def lint(
    model: Annotated[Path, typer.Argument(help="The ONNX model to check.")],
    output_format: Annotated[LintFormat, typer.Option("--format", help="text or json.")] = LintFormat.text,
) -> None:
    """onnx.checker errors, dangling/unused tensors and initializers, duplicate names, nodes onnxruntime rejects."""
    with surgeon_errors():
        findings = lint_model(model)
    if output_format == LintFormat.json:
        typer.echo(json.dumps({"model": str(model), "ok": not findings,
                               "findings": [f.to_json() for f in findings]}, indent=2))
    elif findings:
        for finding in findings:
            typer.echo(str(finding))
        typer.echo(f"{model}: {len(findings)} problem(s) found")
    else:
        typer.echo(f"{model}: no problems found")
    if findings:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(check_app, name="check")
