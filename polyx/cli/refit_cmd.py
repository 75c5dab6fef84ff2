"""`polyx refit PLAN MODEL -o NEWPLAN`: put MODEL's weights into a refittable engine plan.

The inputs are never written: the refitted plan goes to NEWPLAN (a temporary file renamed into place), which may
be none of the inputs. A stripped plan (`convert --strip-plan`) becomes a complete one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def refit(
    plan: Annotated[Path, typer.Argument(help="Refittable engine plan (convert --refittable or --strip-plan).")],
    model: Annotated[Path, typer.Argument(help="ONNX model holding the new weights (same graph as the plan's).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Refitted plan to write.")],
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print nothing on success.")] = False,
) -> None:
    """Put the weights of an ONNX model into a refittable engine plan (-o NEWPLAN).

    PLAN comes from `polyx convert --refittable` or `--strip-plan`; MODEL is the same graph with other weights
    (or, for a stripped plan, the model it was built from). Neither input is written."""
    import engine as trt
    from engine.onnx_file import model_files
    from engine.output_files import note_input

    from ..build import load_engine
    from ..data.files import check_outputs_apart, write_file
    from ..errors import PolyxError

    if not model.is_file():
        raise PolyxError(f"{model}: no such file")
    check_outputs_apart(output, [plan, *model_files(model)])
    note_input(model)
    logger = trt.Logger(trt.Logger.ERROR)
    loaded, _ = load_engine(plan, logger)
    try:
        refitter = trt.Refitter(loaded, logger)
    except trt.RefitError as exc:
        raise PolyxError(f"{plan}: {exc}") from None
    trt.OnnxParserRefitter(refitter, logger).refit_from_file(model)
    count = len(refitter.get_all_weights())
    refitter.refit_cuda_engine()
    write_file(output, loaded.serialize())
    if not quiet:
        typer.echo(f"Refitted {count} weights of {plan} from {model}")
        typer.echo(f"Saved engine to {output}")


def register(app: typer.Typer) -> None:
    app.command("refit")(refit)
