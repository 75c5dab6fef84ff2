"""Runs an ONNX model with onnxruntime (CPU provider): the usual reference for the engine."""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import onnx

from ..errors import PolyxError
from .base import InputMeta, Runner

# onnxruntime reads a serialized model's external data from this folder
EXTERNAL_FOLDER_KEY = "session.model_external_initializers_file_folder_path"

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(int8)": np.int8, "tensor(int16)": np.int16, "tensor(int32)": np.int32, "tensor(int64)": np.int64,
              "tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16, "tensor(uint32)": np.uint32,
              "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_}


def resolve_providers(names: list[str]) -> list[str]:
    """Execution provider names as Polygraphy takes them (`cuda`, `cpu`, `tensorrt`, or the full
    `CUDAExecutionProvider`, any case) -> onnxruntime's names; refused unless the installed onnxruntime has them."""
    import onnxruntime as ort

    known = {p.lower().removesuffix("executionprovider"): p for p in ort.get_all_providers()}
    available = ort.get_available_providers()
    resolved = []
    for name in names:
        provider = known.get(name.strip().lower().removesuffix("executionprovider"))
        if provider is None:
            raise PolyxError(f"--providers '{name}': not an onnxruntime execution provider (available here: "
                             f"{', '.join(_short(p) for p in available)})")
        if provider not in available:
            raise PolyxError(f"--providers '{name}': this onnxruntime ({ort.__version__}) has no {provider} "
                             f"(available here: {', '.join(_short(p) for p in available)})")
        if provider not in resolved:
            resolved.append(provider)
    return resolved


def _short(provider: str) -> str:
    return provider.removesuffix("ExecutionProvider").lower()


def create_session(model: onnx.ModelProto | str | os.PathLike, providers: list[str] | tuple[str, ...],
                   external_data_dir: str | os.PathLike | None = None):
    """An onnxruntime InferenceSession, quiet, with a one-line PolyxError when onnxruntime refuses the model.
    `external_data_dir`: where a ModelProto's external data lies."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if external_data_dir is not None:
        options.add_session_config_entry(EXTERNAL_FOLDER_KEY, os.fspath(external_data_dir))
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else os.fspath(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=list(providers))
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise PolyxError(f"onnxruntime could not load the model: {str(exc).splitlines()[0]}") from None


class OnnxrtRunner(Runner):
    """Takes a model (path or ModelProto), or a loader returning an onnxruntime session (the scripting API's
    SessionFromOnnx), called at each activation."""

    name = "onnxrt"

    def __init__(self, model: onnx.ModelProto | str | os.PathLike | Callable, name: str = "onnxrt",
                 providers: tuple[str, ...] = ("CPUExecutionProvider",), external_data_dir: str | None = None):
        """`external_data_dir`: where a ModelProto's external data lies (onnxruntime reads it from there, so the
        proto need not hold the weights)."""
        super().__init__()
        self.model = model
        self.external_data_dir = external_data_dir
        self.name = name
        self.providers = list(providers)
        self.session = None

    def _activate(self) -> None:
        if callable(self.model):
            self.session = self.model()
        else:
            self.session = create_session(self.model, self.providers, self.external_data_dir)

    def input_metadata(self) -> InputMeta:
        if self.session is None:
            raise PolyxError("onnxruntime runner: activate() before asking for input metadata")
        return {i.name: (tuple(d if isinstance(d, int) else -1 for d in i.shape),
                         np.dtype(_ORT_TYPES.get(i.type, np.float32))) for i in self.session.get_inputs()}

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        inputs = {i.name: feeds[i.name] for i in self.session.get_inputs() if i.name in feeds}
        try:
            values = self.session.run(names, inputs)
        except Exception as exc:  # noqa: BLE001
            raise PolyxError(f"onnxruntime inference failed: {str(exc).splitlines()[0]}") from None
        return {name: value for name, value in zip(names, values) if isinstance(value, np.ndarray)}

    def _deactivate(self) -> None:
        self.session = None
