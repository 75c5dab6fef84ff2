"""`polyx plugin`: Polygraphy's plugin subtool on the engine's plugin registry.

`list` says which nodes of a model import as plugins and which subgraphs registered plugins could replace; `match`
writes those subgraphs to a JSON replacement file (edit it to drop or change entries); `replace` swaps each listed
subgraph for one plugin node. Plugins come from `--plugins FILE.py` modules.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .multi_value_options import multi_value_command
from .plugin_options import PluginsOption
from .surgeon_errors import surgeon_errors

plugin_app = typer.Typer(name="plugin", help="List, match and replace subgraphs with plugins (Python modules given by "
                                            "--plugins).", no_args_is_help=True)

ModelArgument = Annotated[Path, typer.Argument(help="The ONNX model to read (never modified).")]


def _registered(plugins: list[Path] | None) -> list[type]:
    import engine

    from ..plugin_modules import load_plugin_modules

    load_plugin_modules(plugins)
    return engine.get_plugin_registry().all_plugins


@plugin_app.command("list", cls=multi_value_command("--plugins"))
def list_plugins(model: ModelArgument, plugins: PluginsOption = None) -> None:
    """Registered plugins, the model's nodes that import as plugins, and what each pattern-plugin could replace."""
    import engine
    from engine.plugin import plugin_key_text
    from surgeon.model_io import load_model
    from surgeon.plugin_match import find_matches

    registered = _registered(plugins)
    with surgeon_errors():
        onnx_model = load_model(model, check=False)
        matches = find_matches(onnx_model, registered)
    typer.echo(f"registered plugins: {len(registered)}")
    for cls in registered:
        implementations = cls.implementations() or {"compute": (None, ("cpu", "gpu"))}
        described = ", ".join(f"{name} [{'/'.join(backends)}]" for name, (_, backends) in implementations.items())
        pattern = "pattern" if cls.pattern() is not None else "no pattern"
        typer.echo(f"  {plugin_key_text(cls)}: {described}; {pattern}")
    parser = engine.OnnxParser(engine.Builder(engine.Logger(engine.Logger.ERROR)).create_network(),
                               engine.Logger(engine.Logger.ERROR))
    custom = [n for n in onnx_model.graph.node if not parser.supports_operator(n.op_type, _domain(n.domain))]
    registry = engine.get_plugin_registry()
    typer.echo(f"nodes with no built-in importer: {len(custom)}")
    for node in custom:
        cls = registry.get(node.op_type)
        verdict = f"imports as plugin {plugin_key_text(cls)}" if cls is not None else "no plugin registered"
        typer.echo(f"  {node.name or '(unnamed)'} ({_domain(node.domain) + '::' if node.domain else ''}"
                   f"{node.op_type}): {verdict}")
    typer.echo(f"subgraphs registered plugins could replace: {len(matches)}")
    for match in matches:
        typer.echo(f"  {match.plugin}: {', '.join(match.nodes)} ({', '.join(match.inputs)} -> "
                   f"{', '.join(match.outputs)})")


def _domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


@plugin_app.command("match", cls=multi_value_command("--plugins"))
def match(
    model: ModelArgument,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the JSON replacement file.")],
    plugins: PluginsOption = None,
) -> None:
    """Find every subgraph a registered plugin's pattern matches; write them as a replacement file to review."""
    from engine.output_files import write_output
    from surgeon.model_io import load_model
    from surgeon.plugin_match import find_matches, replacements_to_json

    registered = _registered(plugins)
    if not any(cls.pattern() is not None for cls in registered):
        from ..errors import PolyxError

        raise PolyxError("no registered plugin declares a pattern() to match (load one with --plugins FILE.py)")
    with surgeon_errors():
        matches = find_matches(load_model(model, check=False), registered)
    write_output(output, replacements_to_json(str(model), matches), inputs=[model], what="replacement file")
    typer.echo(f"{len(matches)} subgraph(s) matched; wrote {output} (edit it, then `polyx plugin replace`)")


@plugin_app.command("replace", cls=multi_value_command("--plugins"))
def replace(
    model: ModelArgument,
    config: Annotated[Path, typer.Option("--config", help="The replacement file `polyx plugin match` wrote.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the new model.")],
    plugins: PluginsOption = None,
) -> None:
    """Replace each subgraph of the replacement file (entries with "replace": true) by one plugin node."""
    from engine.output_files import check_output
    from surgeon.model_io import check_output_path, load_model, save_model
    from surgeon.plugin_match import apply_replacements, load_replacements

    _registered(plugins)
    with surgeon_errors():
        check_output_path(output, model)
        check_output(output, [config], "output model")
        replacements = load_replacements(config)
        result, count = apply_replacements(load_model(model), replacements)
        save_model(result, output, input_path=model)
    typer.echo(f"replaced {count} subgraph(s) with plugin nodes; saved {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(plugin_app, name="plugin")
