"""Merge saved inputs and outputs into one input file (Polygraphy's `data to-input`): iteration i of the result
holds every tensor of iteration i of every file (and of every runner of a RunResults file), later files
overriding earlier ones for a tensor name. Typical use: feed a subgraph both the model inputs and the
intermediate tensors a previous run saved."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import PolyxError
from .files import Iterations, load_tensors
from .polygraphy_format import is_polygraphy_document, iteration_files, load_run_results, polygraphy_class


def iterations_of_every_runner(path: Path) -> list[Iterations]:
    """A file's iterations; for Polygraphy RunResults, one list per runner."""
    path = Path(path)
    if path.suffix == ".json" and path.is_file():
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PolyxError(f"{path}: not valid JSON: {exc}") from None
        if is_polygraphy_document(doc) and polygraphy_class(doc) == "RunResults":
            return [iterations for _, iterations in load_run_results(doc, path)]
    return [load_tensors(path)]


def _chain(per_file: list[list[Iterations]]) -> list[Iterations]:
    """The files of a directory one after another, runner by runner (runner k of every file)."""
    runners = max(len(lists) for lists in per_file)
    return [[it for lists in per_file if k < len(lists) for it in lists[k]] for k in range(runners)]


def merge_to_input(paths: list[Path]) -> Iterations:
    """Iteration-wise union of the tensors of every file (and runner), later ones winning on equal names."""
    if not paths:
        raise PolyxError("data to-input: give at least one input or output file")
    merged: Iterations = []
    for path in paths:
        per_runner = _chain([iterations_of_every_runner(file) for file in iteration_files(path)])
        for iterations in per_runner:
            merged.extend({} for _ in range(len(iterations) - len(merged)))
            for index, tensors in enumerate(iterations):
                merged[index].update(tensors)
    if not merged:
        raise PolyxError(f"data to-input: {', '.join(map(str, paths))} hold no iterations")
    return merged
