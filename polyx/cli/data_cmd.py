"""`polyx data`: tools for saved tensor files (Polygraphy's `polygraphy data`)."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..data.files import check_writable, save_tensors
from ..data.polygraphy_format import save_input_list
from ..data.to_input import merge_to_input
from ..errors import PolyxError

data_app = typer.Typer(name="data", help="Work with saved input and output files.", no_args_is_help=True)


class FileFormat(str, Enum):
    polyx = "polyx"
    polygraphy = "polygraphy"


@data_app.command("to-input")
def to_input(
    files: Annotated[list[Path], typer.Argument(help="Input and output files (ours or Polygraphy's JSON).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The merged input file to write.")],
    save_format: Annotated[FileFormat, typer.Option(
        "--save-format", help="polyx (.npz/.json by suffix) or polygraphy (Polygraphy's JSON input list).",
        case_sensitive=False)] = FileFormat.polyx,
) -> None:
    """Merge FILES into one input file for --load-inputs: iteration i holds every tensor of iteration i of every
    file (every runner of RunResults), later files overriding earlier ones for the same tensor name."""
    check_writable(output)
    if output.resolve() in {path.resolve() for path in files}:
        raise PolyxError(f"{output} is also an input; write the merged file elsewhere")
    if save_format == FileFormat.polygraphy and output.suffix != ".json":
        raise PolyxError(f"{output}: --save-format polygraphy writes JSON; name the file *.json")
    merged = merge_to_input(files)
    if save_format == FileFormat.polygraphy:
        save_input_list(output, merged)
    else:
        save_tensors(output, merged)
    names = sorted({name for iteration in merged for name in iteration})
    typer.echo(f"Wrote {len(merged)} iteration(s) of {len(names)} tensor(s) to {output}: {', '.join(names[:8])}"
               f"{' ...' if len(names) > 8 else ''}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
