"""`polyx surgeon`: sanitize (fold constants, simplify, clean up, sort, infer shapes), extract and insert.

Every command writes only its explicit `-o` path (overwriting it), refuses to write over the input model, and
checks the output folder before doing any work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from surgeon.extract import extract as extract_subgraph
from surgeon.insert import insert as insert_node
from surgeon.model_io import check_output_path, load_model, save_model
from surgeon.sanitize import SanitizeOptions
from surgeon.sanitize import sanitize as sanitize_model
from surgeon.simplify import rewrite_names
from surgeon.tensor_specs import parse_attribute, parse_shape_override, parse_tensor_spec

from .build_options import parse_size
from .multi_value_options import multi_value_command
from .surgeon_errors import surgeon_errors

surgeon_app = typer.Typer(name="surgeon", help="Rewrite ONNX graphs: sanitize, extract a subgraph, insert a node.",
                          no_args_is_help=True)

ModelArgument = Annotated[Path, typer.Argument(help="The ONNX model to read (never modified).")]
OutputOption = Annotated[Path, typer.Option("-o", "--output", help="Where to write the new model (its folder must "
                                                                  "exist; an existing file there is overwritten).")]


@surgeon_app.command("sanitize", cls=multi_value_command("--override-input-shapes", "--skip"))
def sanitize(
    model: ModelArgument,
    output: OutputOption,
    fold_constants: Annotated[bool, typer.Option("--fold-constants", help="Fold constant subgraphs (onnxruntime "
                              "evaluates them), repeating until nothing changes.")] = False,
    num_passes: Annotated[int | None, typer.Option("--num-passes", min=1, help="At most this many folding "
                          "passes.")] = None,
    fold_shapes: Annotated[bool, typer.Option("--fold-shapes/--no-fold-shapes", help="Fold Shape ops (and their "
                           "arithmetic) whose input dims are static.")] = True,
    size_threshold: Annotated[str | None, typer.Option("--size-threshold", help="Do not fold constants larger than "
                              "this (bytes; K/M/G suffixes).")] = None,
    simplify: Annotated[bool, typer.Option("--simplify/--no-simplify", help="With --fold-constants: also remove "
                        "no-op nodes, fuse Transpose/Reshape chains, merge duplicate nodes.")] = True,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="Rewrites not to run (one or more names: "
                    f"{', '.join(rewrite_names())}).")] = None,
    cleanup: Annotated[bool, typer.Option("--cleanup", help="Remove nodes and tensors no output needs.")] = False,
    toposort: Annotated[bool, typer.Option("--toposort", help="Sort the nodes topologically.")] = False,
    infer_shapes: Annotated[bool, typer.Option("--infer-shapes", help="Store inferred shapes in the model.")] = False,
    override_input_shapes: Annotated[list[str] | None, typer.Option("--override-input-shapes", help="name:[dims] "
                                     "(one or more), e.g. input_ids:[1,128].")] = None,
    external_data: Annotated[bool | None, typer.Option("--external-data/--no-external-data", help="Store weights "
                             "in OUTPUT.data (default: when the input did, or above 2 GiB).")] = None,
) -> None:
    """Fold constants, simplify, clean up, sort and infer shapes; prints what changed."""
    with surgeon_errors():
        check_output_path(output, model)
        shapes = dict(parse_shape_override(text) for text in override_input_shapes or [])
        options = SanitizeOptions(fold_constants=fold_constants, num_passes=num_passes, fold_shapes=fold_shapes,
                                  size_threshold=parse_size(size_threshold or None, "--size-threshold"),
                                  simplify=simplify, skip=frozenset(skip or ()), cleanup=cleanup, toposort=toposort,
                                  infer_shapes=infer_shapes, input_shapes=shapes)
        result, report = sanitize_model(load_model(model), options)
        data_file = save_model(result, output, input_path=model, external_data=external_data)
    for line in report.lines():
        typer.echo(line)
    typer.echo(f"saved {output}" + (f" (weights in {data_file.name})" if data_file else ""))


@surgeon_app.command("extract", cls=multi_value_command("--inputs", "--outputs"))
def extract(
    model: ModelArgument,
    output: OutputOption,
    inputs: Annotated[list[str] | None, typer.Option("--inputs", help="name:shape:dtype (one or more); shape and "
                      "dtype may be 'auto' (inferred), e.g. x:[1,3,224,224]:float32 or x:auto:auto.")] = None,
    outputs: Annotated[list[str] | None, typer.Option("--outputs", help="name:dtype (one or more); dtype may be "
                       "'auto'.")] = None,
) -> None:
    """Save the subgraph that computes --outputs from --inputs as a standalone model."""
    with surgeon_errors():
        check_output_path(output, model)
        input_specs = [parse_tensor_spec(text, "--inputs") for text in inputs or []]
        output_specs = [parse_tensor_spec(text, "--outputs", with_shape=False) for text in outputs or []]
        result = extract_subgraph(load_model(model), input_specs, output_specs)
        save_model(result, output, input_path=model)
    typer.echo(f"extracted {len(result.graph.node)} nodes "
               f"({', '.join(i.name for i in result.graph.input)} -> {', '.join(o.name for o in result.graph.output)})")
    typer.echo(f"saved {output}")


@surgeon_app.command("insert", cls=multi_value_command("--inputs", "--outputs", "--attrs"))
def insert(
    model: ModelArgument,
    output: OutputOption,
    op: Annotated[str, typer.Option("--op", help="Op type of the new node (e.g. a plugin name).")],
    inputs: Annotated[list[str] | None, typer.Option("--inputs", help="Tensors the new node reads (one or "
                      "more).")] = None,
    outputs: Annotated[list[str] | None, typer.Option("--outputs", help="Tensors the new node produces; what only "
                       "they needed is removed.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Node name (default: OP_inserted).")] = None,
    domain: Annotated[str | None, typer.Option("--domain", help="Op domain (default: '' for ONNX ops, "
                      "'polyx.plugin' otherwise).")] = None,
    attrs: Annotated[list[str] | None, typer.Option("--attrs", help="key=value (one or more); values are read as "
                     "int, float, list or string.")] = None,
) -> None:
    """Replace the subgraph between --inputs and --outputs with one node (the plugin workflow)."""
    with surgeon_errors():
        check_output_path(output, model)
        attributes = dict(parse_attribute(text) for text in attrs or [])
        original = load_model(model)
        nodes_before = len(original.graph.node)
        result = insert_node(original, inputs or [], outputs or [], op, name=name, domain=domain, attrs=attributes)
        save_model(result, output, input_path=model)
    typer.echo(f"inserted {op} node; nodes: {nodes_before} -> {len(result.graph.node)}")
    typer.echo(f"saved {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(surgeon_app, name="surgeon")
