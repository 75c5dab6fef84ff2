"""`inspect tactics`: a tactic replay file (polyx.tactic_replay) per layer, and how often each tactic is used."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ..tactic_replay import load_replay
from .render import Block, Table


def describe_tactics(path: str | Path) -> dict[str, Any]:
    replay = load_replay(path)
    layers = [{"name": name, "tactic": str(entry.get("tactic", "")), "tactic_id": int(entry["tactic_id"]),
               "layer_type": str(entry.get("layer_type", ""))} for name, entry in replay.items()]
    usage = Counter((layer["tactic"], layer["tactic_id"]) for layer in layers)
    return {"kind": "tactics", "file": str(path), "layers": layers,
            "tactics": [{"tactic": name, "tactic_id": tactic_id, "count": count}
                        for (name, tactic_id), count in sorted(usage.items(), key=lambda i: (-i[1], i[0][0]))]}


def tactics_blocks(report: dict[str, Any]) -> list[Block]:
    return [
        Table(f"tactic replay {report['file']}: {len(report['layers'])} layers", ["layer", "type", "tactic", "id"],
              [[layer["name"], layer["layer_type"] or "-", layer["tactic"] or "-", str(layer["tactic_id"])]
               for layer in report["layers"]]),
        Table("tactics", ["tactic", "id", "layers"],
              [[t["tactic"] or "-", str(t["tactic_id"]), str(t["count"])] for t in report["tactics"]]),
    ]
