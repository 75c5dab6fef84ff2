"""onnxruntime as the reference for intermediate tensors, built from the model file.

The session is made from the model's graph without its external data (the weights stay on disk; onnxruntime reads
them from the model's folder itself), with every typed node output declared as a graph output. Each run asks only
for the tensors the caller names, so onnxruntime returns just those (and frees the rest as it goes): a caller that
asks in chunks holds one chunk of reference tensors at a time, never a >2 GB protobuf or every activation.
"""
from __future__ import annotations

import os

import numpy as np

from engine.onnx_file import external_data_paths, load_onnx_file

from ..errors import PolyxError
from ..marking import mark_onnx_outputs
from .onnxrt_runner import EXTERNAL_FOLDER_KEY


class OnnxrtIntermediates:
    def __init__(self, model_path: str | os.PathLike, providers: tuple[str, ...] = ("CPUExecutionProvider",)):
        self.model_path = os.fspath(model_path)
        self.providers = list(providers)
        self.session = None
        self.available: set[str] = set()  # tensors onnxruntime can output (typed node outputs)

    def __enter__(self) -> OnnxrtIntermediates:
        import onnxruntime as ort

        model = load_onnx_file(self.model_path, load_external_data=False)
        external_data_paths(model, self.model_path)  # a location outside the model's folder is refused here
        marked = mark_onnx_outputs(model, [], mark_all=True)
        self.available = {o.name for o in marked.graph.output}
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry(EXTERNAL_FOLDER_KEY, os.path.dirname(os.path.abspath(self.model_path)))
        try:
            self.session = ort.InferenceSession(marked.SerializeToString(), sess_options=options,
                                                providers=self.providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise PolyxError(f"{self.model_path}: onnxruntime could not load the model with its intermediate "
                             f"tensors as outputs: {str(exc).splitlines()[0]}") from None
        return self

    def __exit__(self, *exc) -> None:
        self.session = None

    def run(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        """The named tensors for these inputs (only those are returned)."""
        inputs = {i.name: feeds[i.name] for i in self.session.get_inputs() if i.name in feeds}
        try:
            with np.errstate(all="ignore"):
                values = self.session.run(list(names), inputs)
        except Exception as exc:  # noqa: BLE001
            raise PolyxError(f"onnxruntime inference failed: {str(exc).splitlines()[0]}") from None
        return dict(zip(names, values))
