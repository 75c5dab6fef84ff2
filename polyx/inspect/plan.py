"""`inspect model` for polyx plans: build settings, profiles, IO, per-layer tactics, memory and pass summary.

The report reads the plan's lowered graph (`engine.plan.deserialize_plan`) rather than creating an Engine:
a plan built for a GPU, or with a tactic registered only in the building process, is still inspectable here,
and no tactic has to re-lay out weights just to be looked at.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from engine.enums import LayerType, TensorFormat
from engine.errors import PlanFormatError
from engine.graph import LoweredGraph
from engine.plan import deserialize_plan
from engine.tactics.catalog import tactic_source_name

from ..errors import PolyxError
from .render import Block, Fields, Table, format_bytes, format_shape
from .stats import tensor_stats
from .views import attribute_text, histogram, io_rows, ops_table, stats_table


def load_plan(path: Path) -> tuple[LoweredGraph, dict[str, Any]]:
    try:
        return deserialize_plan(path.read_bytes())
    except PlanFormatError as exc:
        message = str(exc).removeprefix("plan: ")
        raise PolyxError(f"{path}: {message}") from None


def describe_plan(path: Path, show: set[str]) -> dict[str, Any]:
    """A JSON-ready report. `show`: 'layers' adds per-layer rows, 'attrs' layer parameters, 'weights' constants."""
    graph, meta = load_plan(path)
    verbosity = meta["profiling_verbosity"]
    rows = _layers(graph, with_params="attrs" in show, verbosity=verbosity)
    memory = dict(meta.get("memory", {}))
    planned, naive = int(memory.get("planned_peak_bytes", 0)), int(memory.get("naive_bytes", 0))
    memory["device_memory_size"] = planned + int(memory.get("workspace_bytes", 0))
    memory["saved_fraction"] = 1 - planned / naive if naive else 0.0
    tactics = Counter((row["tactic"], row["tactic_id"]) for row in rows if not row["host"] and "tactic" in row)
    report: dict[str, Any] = {
        "kind": "plan",
        "file": str(path),
        "name": meta.get("name", ""),
        "engine_version": meta.get("engine_version"),
        "builder": meta.get("builder", ""),
        "device": meta.get("device", "cpu"),
        "device_name": meta.get("device_name", ""),
        "optimization_level": meta.get("optimization_level"),
        "flags": dict(meta.get("flags", {})),
        # what the plan lets tools see of its layers (ProfilingVerbosity), and where it may run
        "profiling_verbosity": verbosity,
        "compatibility": dict(meta["compatibility"]),
        "strongly_typed": meta["strongly_typed"],
        "profiles": [{"index": index, "inputs": [{"name": name, "min": shapes[0], "opt": shapes[1], "max": shapes[2]}
                                                 for name, shapes in profile.items()]}
                     for index, profile in enumerate(meta.get("profiles", []))],
        "io": [{"name": graph.tensors[i].name, "mode": mode, "dtype": graph.tensors[i].dtype.value,
                "shape": _shape(graph.tensors[i].shape)}
               for mode, indices in (("INPUT", graph.inputs), ("OUTPUT", graph.outputs)) for i in indices],
        "layer_counts": {"total": len(rows), "device": sum(not r["host"] for r in rows),
                         "host": sum(r["host"] for r in rows),
                         "reformat": sum(r["type"] == LayerType.REFORMAT.value for r in rows),
                         # reshape-only SHUFFLE layers running as views of their inputs (engine/shuffle_views.py)
                         "views": sum(r["view"] for r in rows),
                         "before_optimization": meta.get("layers_before")},
        "layer_types": histogram(Counter(row["type"] for row in rows), "type"),
        "tactics": [{"tactic": name, "tactic_id": tactic_id, "count": count}
                    for (name, tactic_id), count in sorted(tactics.items(), key=lambda i: (-i[1], i[0][0]))],
        "reformat_layers": [{"name": r["name"], **r["reformat"]} for r in rows if "reformat" in r],
        # tensors by memory layout (BuilderConfig.channels_last makes HWC ones)
        "tensor_formats": dict(Counter(t.format.value for t in graph.tensors)),
        # BuilderConfig.channels_last "auto": each chain's LINEAR and HWC times and the choice (None otherwise)
        "channels_last": _channels_last_choice(meta.get("channels_last"), verbosity),
        "int8_tensors": _int8_tensors(graph),
        "memory": memory,
        "passes": dict(meta.get("passes", {})),
        "refit": _refit_summary(graph),
    }
    if show & {"layers", "attrs"}:
        report["layers"] = rows
        # the layers inside If/Loop/Scan subgraphs, each with its one tactic (DETAILED verbosity shows them)
        report["subgraph_layers"] = _subgraph_layers(graph) if verbosity == "DETAILED" else []
    if "weights" in show:
        stripped = graph.refit.tensors() if graph.refit is not None and graph.refit.stripped else set()
        report["weights"] = [{"name": graph.tensors[index].name, **tensor_stats(array)}
                             for index, array in sorted(graph.constants.items()) if index not in stripped]
    return report


def plan_blocks(report: dict[str, Any]) -> list[Block]:
    counts, memory = report["layer_counts"], report["memory"]
    enabled = [name for name, on in report["flags"].items() if on]
    blocks: list[Block] = [
        Fields(f"polyx plan {report['file']}", [
            ("name", report["name"] or "-"),
            ("engine version", str(report["engine_version"])),
            ("device", f"{report['device']} ({report['device_name'] or 'unknown'})"),
            ("optimization level", str(report["optimization_level"])),
            ("flags", ", ".join(enabled) or "none"),
            ("refit", _refit_text(report["refit"])),
            ("strongly typed", "yes" if report["strongly_typed"] else "no"),
            ("profiling verbosity", report["profiling_verbosity"]),
            ("compatibility", _compatibility_text(report["compatibility"])),
            ("layers", f"{counts['total']} ({counts['device']} device, {counts['host']} host shape arithmetic, "
                       f"{counts['reformat']} reformat; {counts['before_optimization']} before optimization)"
                       + (f"; {counts['views']} shuffle layers are views (no kernel, no buffer)"
                          if counts["views"] else "")),
            *_formats_field(report["tensor_formats"]),
            *_channels_last_field(report["channels_last"]),
        ]),
        Table("profiles", ["profile", "input", "min", "opt", "max"],
              [[str(p["index"]), e["name"], format_shape(e["min"]), format_shape(e["opt"]), format_shape(e["max"])]
               for p in report["profiles"] for e in p["inputs"]]),
        Table("bindings", ["name", "mode", "dtype", "shape"],
              [[row[0], io["mode"], row[1], row[2]] for io, row in zip(report["io"], io_rows(report["io"]))]),
        Fields("memory", [
            ("device memory size", format_bytes(memory["device_memory_size"])),
            ("activations planned", format_bytes(int(memory.get("planned_peak_bytes", 0)))),
            ("activations naive", format_bytes(int(memory.get("naive_bytes", 0)))),
            ("saved by planning", f"{100 * memory['saved_fraction']:.1f}%"),
            ("workspace", format_bytes(int(memory.get("workspace_bytes", 0)))),
        ]),
        Table("passes", ["pass", "changes"], [[name, str(value)] for name, value in report["passes"].items()]),
        ops_table("layer types", "type", report["layer_types"]),
        Table("tactics", ["tactic", "id", "layers"],
              [[t["tactic"], str(t["tactic_id"]), str(t["count"])] for t in report["tactics"]]),
        Table("reformat layers", ["name", "from", "to"],
              [[r["name"], r["from"], r["to"]] for r in report["reformat_layers"]]),
        Table("INT8 tensors", ["tensor", "scale", "dynamic range", "used as"],
              [[t["tensor"], f"{t['scale']:.6g}", f"±{127 * t['scale']:.6g}", ", ".join(t["roles"])]
               for t in report["int8_tensors"]]),
    ]
    if report["channels_last"] is not None:
        blocks.append(Table("channels-last choice (profile 0's opt shapes)",
                            ["first layer", "layers", "LINEAR ms", "HWC ms", "choice"],
                            [[c["first"], str(c["layers"]), f"{c['linear_ms']:.4f}", f"{c['hwc_ms']:.4f}",
                              "HWC" if c["hwc"] else "LINEAR"] for c in report["channels_last"]["chains"]]))
    if "layers" in report:
        with_params = any("params" in row for row in report["layers"])
        views = any(row["view"] for row in report["layers"])
        columns = ["#", "name", "type", "precision", "tactic", "tactic id", "source", "fused from"]
        rows = []
        for row in report["layers"]:
            tactic_id = "-" if row["host"] or "tactic_id" not in row else str(row["tactic_id"])
            per_profile = row.get("tactics_per_profile", [])
            tactic = row.get("tactic", "-") if len(set(per_profile)) < 2 else \
                ", ".join(f"profile {i}: {name}" for i, name in enumerate(per_profile))
            cells = [str(row["index"]), row["name"], row["type"], row["precision"], tactic, tactic_id,
                     (row.get("source") or "-").lower(), ", ".join(row["fused_from"]) or "-"]
            if views:  # the recorded tactic was timed, but a view layer runs nothing (engine/shuffle_views.py)
                cells.append("yes (no kernel)" if row["view"] else "-")
            if with_params:
                cells.append(attribute_text(row["params"]))
            rows.append(cells)
        blocks.append(Table("layers", columns + (["view"] if views else []) + (["params"] if with_params else []),
                            rows))
    if report.get("subgraph_layers"):
        blocks.append(Table("subgraph layers", ["subgraph", "name", "type", "tactic", "tactic id"],
                            [[r["subgraph"], r["name"], r["type"], r["tactic"], str(r["tactic_id"])]
                             for r in report["subgraph_layers"]]))
    if "weights" in report:
        blocks.append(stats_table("constant statistics", report["weights"]))
    return blocks


def _layers(graph: LoweredGraph, with_params: bool, verbosity: str = "DETAILED") -> list[dict[str, Any]]:
    """The fields of `Engine.layer_info()` (constants are data, not layers), plus reformat directions, as far as
    the plan's ProfilingVerbosity shows them: NONE only index, type, precision and host (no names, no tactics);
    LAYER_NAMES_ONLY adds names, fused-from names and IO tensor names; DETAILED adds tactics, epilogues and the
    formats (dtype and shape) of every input and output."""
    rows = []
    for spec in graph.layers:
        layer = spec.layer
        if layer.type == LayerType.CONSTANT:
            continue
        row: dict[str, Any] = {"index": len(rows), "name": "-", "type": layer.type.value,
                               "precision": layer.precision.value, "host": spec.host, "view": spec.view,
                               "fused_from": []}
        if verbosity == "NONE":
            rows.append(row)
            continue
        row.update({
            "name": layer.name, "fused_from": list(layer.metadata.get("fused_from", [])),
            "inputs": [None if i is None else graph.tensors[i].name for i in spec.inputs],
            "outputs": [graph.tensors[o].name for o in spec.outputs],
        })
        if verbosity == "DETAILED":
            row.update({
                "tactic": spec.tactic_name or ("host" if spec.host else ""), "tactic_id": spec.tactic_id,
                "tactics_per_profile": list(spec.tactic_names),
                # the tactic's TacticSource (cublas, cudnn, ...); None: a kernel of no source
                "source": None if spec.host or not spec.tactic_id else tactic_source_name(spec.tactic_id),
                # what fusion appended after the layer's own work: {residual input position, activation}
                "epilogue": None if layer.epilogue.empty else layer.epilogue.to_json(),
                "formats": {"inputs": [None if i is None else _format(graph, i) for i in spec.inputs],
                            "outputs": [_format(graph, o) for o in spec.outputs]},
            })
        if layer.type == LayerType.REFORMAT:
            source = _layout(graph, spec.inputs[0]) if spec.inputs and spec.inputs[0] is not None else "?"
            row["reformat"] = {"from": source, "to": _layout(graph, spec.outputs[0])}
        if with_params:
            row["params"] = {k: v for k, v in layer.params.items() if k != "weights"}
        rows.append(row)
    return rows


def _subgraph_layers(graph: LoweredGraph) -> list[dict[str, Any]]:
    """Engine.subgraph_layer_info's rows, read from the plan's graph: the tactic each subgraph layer runs where it
    supports the shapes (else, and for "reference", its reference kernel)."""
    from engine.subgraph import subgraph_layers

    return [{"subgraph": path, "name": spec.layer.name, "type": spec.layer.type.value,
             "tactic": spec.tactic_name or "reference", "tactic_id": spec.tactic_id}
            for path, spec in subgraph_layers(graph)]


def _int8_tensors(graph: LoweredGraph) -> list[dict[str, Any]]:
    """Every INT8 tensor an INT8 layer reads or writes, with its scale (dynamic range = 127 x scale) and roles."""
    found: dict[str, dict[str, Any]] = {}

    def note(index: int, scale: float, role: str) -> None:
        name = graph.tensors[index].name
        found.setdefault(name, {"tensor": name, "scale": scale, "roles": []})["roles"].append(role)

    for spec in graph.layers:
        quantization = spec.layer.params.get("int8")
        if quantization is None:
            continue
        note(spec.inputs[0], quantization["input_scale"], f"input of {spec.layer.name}")
        if spec.layer.epilogue.output_scale is not None:
            note(spec.outputs[0], spec.layer.epilogue.output_scale, f"output of {spec.layer.name}")
    return list(found.values())


def _refit_summary(graph: LoweredGraph) -> dict[str, Any]:
    table = graph.refit
    return {"refittable": table is not None, "stripped": bool(table is not None and table.stripped),
            "weights": [] if table is None else [w.name for w in table.weights]}


def _refit_text(refit: dict[str, Any]) -> str:
    if not refit["refittable"]:
        return "not refittable (built without --refittable)"
    count = len(refit["weights"])
    if refit["stripped"]:
        return f"refittable, weight-stripped: {count} weights left out; run `polyx refit PLAN MODEL -o NEWPLAN`"
    return f"refittable: {count} named weights"


def _format(graph: LoweredGraph, index: int) -> str:
    """A tensor's format as DETAILED inspection shows it: dtype and shape ("FLOAT [-1, 16]"), then the memory
    layout when it is not LINEAR ("HALF [-1, 32, 56, 56] HWC": NCHW dims in channels-last memory)."""
    tensor = graph.tensors[index]
    layout = "" if tensor.format == TensorFormat.LINEAR else f" {tensor.format.value}"
    return f"{tensor.dtype.value} {format_shape(_shape(tensor.shape))}{layout}"


def _formats_field(formats: dict[str, int]) -> list[tuple[str, str]]:
    """The 'tensor formats' line, shown only for a plan with other than LINEAR tensors (--channels-last)."""
    if set(formats) <= {TensorFormat.LINEAR.value}:
        return []
    return [("tensor formats", ", ".join(f"{count} {name}" for name, count in sorted(formats.items())))]


def _channels_last_choice(record: dict[str, Any] | None, verbosity: str) -> dict[str, Any] | None:
    """The plan's record of the timed channels-last choice (validated by the plan loader); NONE verbosity hides
    the chains' layer names."""
    if record is None:
        return None
    return {**record, "chains": [{**chain, "first": "-" if verbosity == "NONE" else chain["first"]}
                                 for chain in record["chains"]]}


def _channels_last_field(record: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The 'channels-last' line, shown only for a plan built with channels_last "auto"."""
    if record is None:
        return []
    chosen = sum(chain["hwc"] for chain in record["chains"])
    return [("channels-last", f"{record['mode']}, {chosen} of {len(record['chains'])} chains HWC (timed)")]


def _layout(graph: LoweredGraph, index: int) -> str:
    """What a reformat layer converts from or to: the dtype, and the memory layout when it is not LINEAR."""
    tensor = graph.tensors[index]
    return tensor.dtype.value + ("" if tensor.format == TensorFormat.LINEAR else f" {tensor.format.value}")


def _compatibility_text(record: dict[str, Any]) -> str:
    parts = [f"built by engine {record['engine_version']} for compute capability {record['compute_capability']}",
             f"hardware compatibility {record['hardware_compatibility_level']}"]
    if record["version_compatible"]:
        parts.append("version compatible")
    return "; ".join(parts)


def _shape(shape: tuple[int, ...] | None) -> list[int] | None:
    return None if shape is None else list(shape)
