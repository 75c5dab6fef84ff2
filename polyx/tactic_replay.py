"""Tactic replay files: which tactic each layer used, so an engine build can be reproduced exactly.

Recording and replaying both go through the engine's public algorithm selector interface, as TensorRT tools do:
`TacticRecorder` accepts every choice and remembers what the builder picked; `TacticReplayer` allows only the
recorded tactic for each recorded layer. The builder asks the selector once per optimization profile: the recorder
keeps profile 0's choice per layer (one entry per layer, so the format does not change), and the replayer forces
that tactic for the layer in every profile, which reproduces a single-profile build exactly and gives a
multi-profile build one known tactic per layer (the point of a replay: a reproducible, bisectable build).
Format (JSON):
`{"format": "polyx-tactics", "version": 1, "layers": {layer name: {"tactic_id", "tactic", "layer_type"}}}`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine.algorithm_selector import Algorithm, AlgorithmContext, IAlgorithmSelector
from engine.output_files import note_input

from .data.files import write_file
from .errors import PolyxError

FORMAT = "polyx-tactics"
VERSION = 1
Replay = dict[str, dict[str, Any]]


class TacticRecorder(IAlgorithmSelector):
    """Allows everything; after the build `replay` maps each layer to the tactic the builder chose for profile 0
    (and `choices` to its profile-0 candidates)."""

    def __init__(self, inner: IAlgorithmSelector | None = None):
        self.inner = inner
        self.replay: Replay = {}
        self.choices: dict[str, list[dict[str, Any]]] = {}

    def select_algorithms(self, context: AlgorithmContext, choices: list[Algorithm]) -> list[int]:
        if context.profile_index == 0:
            self.choices[context.name] = [{"tactic_id": a.algorithm_variant.tactic, "tactic": a.tactic_name,
                                           "timing_ms": a.timing_msec} for a in choices]
        if self.inner is not None:
            return self.inner.select_algorithms(context, choices)
        return list(range(len(choices)))

    def report_algorithms(self, contexts: list[AlgorithmContext], choices: list[Algorithm]) -> None:
        for context, algorithm in zip(contexts, choices):
            if context.profile_index != 0:
                continue
            self.replay[context.name] = {"tactic_id": algorithm.algorithm_variant.tactic,
                                         "tactic": algorithm.tactic_name, "layer_type": context.layer_type}
        if self.inner is not None:
            self.inner.report_algorithms(contexts, choices)


class TacticReplayer(IAlgorithmSelector):
    """Forces the recorded tactic for every layer in `replay`, in every optimization profile (the recording holds
    profile 0's choice); other layers choose freely."""

    def __init__(self, replay: Replay):
        self.replay = replay

    def select_algorithms(self, context: AlgorithmContext, choices: list[Algorithm]) -> list[int]:
        entry = self.replay.get(context.name)
        if entry is None:
            return list(range(len(choices)))
        for index, algorithm in enumerate(choices):
            if algorithm.algorithm_variant.tactic == int(entry["tactic_id"]):
                return [index]
        available = ", ".join(f"{a.tactic_name} ({a.algorithm_variant.tactic})" for a in choices)
        raise PolyxError(f"tactic replay: layer '{context.name}' recorded tactic {entry.get('tactic')} "
                         f"({entry['tactic_id']}), which is not available for it now (available: {available})")


def save_replay(path: str | os.PathLike, replay: Replay) -> None:
    write_file(path, json.dumps({"format": FORMAT, "version": VERSION, "layers": replay}, indent=1, sort_keys=True))


def load_replay(path: str | os.PathLike) -> Replay:
    path = Path(path)
    if not path.is_file():
        raise PolyxError(f"{path}: no such file")
    note_input(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolyxError(f"{path}: not a tactic replay file (invalid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PolyxError(f"{path}: not a polyx tactic replay file (missing \"format\": \"{FORMAT}\")")
    if doc.get("version") != VERSION:
        raise PolyxError(f"{path}: tactic replay version {doc.get('version')} is not supported (expected {VERSION})")
    layers = doc.get("layers")
    if not isinstance(layers, dict) or any(not isinstance(v, dict) or "tactic_id" not in v for v in layers.values()):
        raise PolyxError(f"{path}: malformed 'layers' (expected {{layer name: {{\"tactic_id\": int, ...}}}})")
    return layers
