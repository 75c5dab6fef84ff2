"""`inspect data`: tensor files written by --save-inputs/--save-outputs, per iteration and tensor."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PolyxError
from .render import Block, Preformatted
from .stats import has_numeric_values, tensor_stats
from .views import stats_table

TRUNCATE_ABOVE = 1000  # elements; larger tensors print their first and last few values unless --all
_ZIP_MAGIC = b"PK\x03\x04"  # an .npz is a zip archive


def refuse_other_file_kinds(path: Path) -> None:
    """A plan or an ONNX model passed to `inspect data` is named for what it is, instead of the tensor loader's
    complaint about its bytes."""
    from engine.plan_file import is_plan_file

    with open(path, "rb") as handle:
        head = handle.read(len(_ZIP_MAGIC))
    if head == _ZIP_MAGIC or head.lstrip()[:1] in (b"{", b"["):
        return
    if is_plan_file(path):
        raise PolyxError(f"{path}: this is a polyx engine plan, not a data file (use `polyx inspect model {path}`)")
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model(path, load_external_data=False)
    except (DecodeError, ValueError, OSError, RuntimeError):
        return
    if model.HasField("graph") and len(model.graph.node) + len(model.graph.input) > 0:
        raise PolyxError(f"{path}: this is an ONNX model, not a data file (use `polyx inspect model {path}`; "
                         "`inspect data` reads .npz/.json tensors saved by --save-inputs/--save-outputs)")


def describe_data(path: str | Path, iterations: list[dict[str, np.ndarray]],
                  show_values: bool = False) -> dict[str, Any]:
    """A JSON-ready report; with `show_values` every tensor carries its complete values as nested lists."""
    report: dict[str, Any] = {"kind": "data", "file": str(path), "iterations": []}
    for index, tensors in enumerate(iterations):
        entries = []
        for name, array in tensors.items():
            entry = {"name": name, **tensor_stats(array)}
            if show_values:
                entry["values"] = _json_values(np.asarray(array))
            entries.append(entry)
        report["iterations"].append({"index": index, "tensors": entries})
    return report


def data_blocks(report: dict[str, Any], iterations: list[dict[str, np.ndarray]] | None = None,
                all_values: bool = False) -> list[Block]:
    """Text blocks; `iterations` (the loaded arrays) adds each tensor's values, truncated unless `all_values`."""
    blocks: list[Block] = []
    for iteration in report["iterations"]:
        title = f"{report['file']}: iteration {iteration['index']}"
        blocks.append(stats_table(title, iteration["tensors"]))
        if iterations is not None:
            for name, array in iterations[iteration["index"]].items():
                blocks.append(Preformatted(f"{name} (iteration {iteration['index']})", values_text(array, all_values)))
    return blocks


def _json_values(array: np.ndarray) -> Any:
    # Extension float types (bfloat16, float8) have no JSON form of their own.
    if has_numeric_values(array.dtype) and array.dtype.kind not in "biuf":
        array = array.astype(np.float64)
    return array.tolist()


def values_text(array: Any, all_values: bool) -> str:
    """NumPy's own printing, so values read as they would in a Python session."""
    threshold = sys.maxsize if all_values else TRUNCATE_ABOVE
    return np.array2string(np.asarray(array), threshold=threshold, edgeitems=3, max_line_width=120)
