"""Plugin matching (Polygraphy's `plugin match` / `plugin replace`, on the engine's plugin registry).

A registered plugin that declares `pattern()` (an onnx-graphsurgeon GraphPattern) names the subgraphs it can replace.
`find_matches` lists every non-overlapping match in a model; the list is written as a JSON replacement file the user
may edit (drop an entry, set "replace": false, change fields) and `apply_replacements` swaps each chosen subgraph for
one plugin node with `insert`.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx
import onnx_graphsurgeon as gs

from .errors import SurgeonError
from .graph_tools import import_graph
from .insert import PLUGIN_DOMAIN, insert

FORMAT = "polyx-plugin-replacements"
FORMAT_VERSION = 1


@dataclass
class Replacement:
    """One subgraph and the plugin node that replaces it."""

    plugin: str
    plugin_version: str
    plugin_namespace: str
    inputs: list[str]
    outputs: list[str]
    nodes: list[str]
    fields: dict[str, Any] = field(default_factory=dict)
    replace: bool = True


def _matched_nodes(mapping: Any) -> list[gs.Node]:
    """Every model node of a (possibly nested) PatternMapping."""
    nodes: list[gs.Node] = []
    for value in mapping.values():
        if getattr(value, "onnx_node", None) is not None:
            nodes.append(value.onnx_node)
        elif isinstance(value, dict):
            nodes.extend(_matched_nodes(value))
    return nodes


def _quiet_match_all(pattern: Any, graph: gs.Graph) -> list:
    """GraphPattern.match_all logs every node it tries at INFO; keep the command's output readable."""
    logger = gs.logger.G_LOGGER
    severity, logger.severity = logger.severity, logger.ERROR
    try:
        return pattern.match_all(graph)
    finally:
        logger.severity = severity


def find_matches(model: onnx.ModelProto, plugins: Sequence[type]) -> list[Replacement]:
    """Matches of every plugin's pattern in graph order; a node already claimed by an earlier match is not matched
    again (the first plugin registered wins)."""
    graph = import_graph(model)
    claimed: set[int] = set()
    found: list[Replacement] = []
    for cls in plugins:
        pattern = cls.pattern()
        if pattern is None:
            continue
        for mapping in _quiet_match_all(pattern, graph):
            nodes = _matched_nodes(mapping)
            if not nodes or any(id(n) in claimed for n in nodes):
                continue
            unnamed = [n.op for n in nodes if not n.name]
            if unnamed:
                raise SurgeonError(f"plugin {cls.plugin_type}: matched nodes without names ({', '.join(unnamed)}); "
                                   "run `polyx surgeon sanitize` first, which names every node")
            claimed.update(id(n) for n in nodes)
            try:
                fields = dict(cls.fields_from_match(mapping))
            except Exception as exc:  # noqa: BLE001 - user code
                raise SurgeonError(f"plugin {cls.plugin_type}: fields_from_match failed on the subgraph of "
                                   f"{', '.join(n.name for n in nodes)}: {type(exc).__name__}: {exc}") from None
            found.append(Replacement(str(cls.plugin_type), str(cls.plugin_version), str(cls.plugin_namespace),
                                     [t.name for t in mapping.inputs], [t.name for t in mapping.outputs],
                                     [n.name for n in nodes], fields))
    return found


def replacements_to_json(model_path: str, replacements: Sequence[Replacement]) -> str:
    return json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "model": model_path,
                       "replacements": [asdict(r) for r in replacements]}, indent=2) + "\n"


def load_replacements(path: Path) -> list[Replacement]:
    """The replacement file, validated field by field (errors name the file and the field)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SurgeonError(f"{path}: cannot read the replacement file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SurgeonError(f"{path}: not a polyx plugin replacement file (write one with `polyx plugin match`)")
    if data.get("version") != FORMAT_VERSION:
        raise SurgeonError(f"{path}: version {data.get('version')!r}; this polyx reads version {FORMAT_VERSION}")
    entries = data.get("replacements")
    if not isinstance(entries, list):
        raise SurgeonError(f"{path}: 'replacements' must be a list")
    return [_replacement(path, i, entry) for i, entry in enumerate(entries)]


def _replacement(path: Path, index: int, entry: Any) -> Replacement:
    where = f"{path}: replacements[{index}]"
    if not isinstance(entry, dict):
        raise SurgeonError(f"{where} must be an object")
    for key in ("plugin", "plugin_version", "plugin_namespace"):
        if not isinstance(entry.get(key), str) or (key == "plugin" and not entry[key]):
            raise SurgeonError(f"{where}.{key} must be a string")
    for key in ("inputs", "outputs", "nodes"):
        value = entry.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise SurgeonError(f"{where}.{key} must be a list of tensor/node names")
    if not entry["outputs"]:
        raise SurgeonError(f"{where}.outputs is empty: the plugin node must produce at least one tensor")
    if not isinstance(entry.get("fields", {}), dict):
        raise SurgeonError(f"{where}.fields must be an object")
    if not isinstance(entry.get("replace", True), bool):
        raise SurgeonError(f"{where}.replace must be true or false")
    unknown = set(entry) - set(Replacement.__dataclass_fields__)
    if unknown:
        raise SurgeonError(f"{where}: unknown field(s) {sorted(unknown)}")
    return Replacement(**entry)


def apply_replacements(model: onnx.ModelProto, replacements: Sequence[Replacement]) -> tuple[onnx.ModelProto, int]:
    """The model with each chosen subgraph replaced by one plugin node, and how many were replaced. A listed node
    that is not in the model (a file written for another model, or one already replaced) is an error."""
    count = 0
    for index, replacement in enumerate(replacements):
        if not replacement.replace:
            continue
        present = {n.name for n in model.graph.node}
        missing = [n for n in replacement.nodes if n not in present]
        if missing:
            raise SurgeonError(f"replacements[{index}] ({replacement.plugin}): node(s) {', '.join(missing)} are not "
                               "in the model (a replacement file for another model, or an overlapping entry)")
        attrs = dict(replacement.fields)
        attrs["plugin_version"] = replacement.plugin_version
        if replacement.plugin_namespace:
            attrs["plugin_namespace"] = replacement.plugin_namespace
        name = next(n for n in (f"{replacement.plugin}_{index}{suffix}" for suffix in ("", *range(1, len(present) + 2)))
                    if n not in present)
        model = insert(model, replacement.inputs, replacement.outputs, replacement.plugin, domain=PLUGIN_DOMAIN,
                       name=name, attrs=attrs)
        count += 1
    return model, count
