"""polyx's scripting API: what `polyx run` does, as Polygraphy-style Python (docs/scripting.md). A Polygraphy
script ports by changing its imports to `from polyx.api import ...` (TrtRunner is EngineRunner here).

    from polyx.api import (Comparator, CompareFunc, CreateConfig, DataLoader, EngineFromNetwork, EngineRunner,
                    NetworkFromOnnxPath, OnnxrtRunner)

    build = EngineFromNetwork(NetworkFromOnnxPath("model.onnx"), config=CreateConfig(fp16=True))
    results = Comparator.run([OnnxrtRunner("model.onnx"), EngineRunner(build)], data_loader=DataLoader())
    assert Comparator.compare_accuracy(results, compare_func=CompareFunc.simple(atol=1e-3))
"""
from ..runners import EngineRunner, OnnxrtRunner, Runner
from .comparator import AccuracyResult, Comparator, CompareFunc, RunResults
from .data_loader import DataLoader, TensorMetadata
from .loaders import (
    BytesFromPath,
    CreateConfig,
    EngineBytesFromNetwork,
    EngineFromBytes,
    EngineFromNetwork,
    NetworkFromOnnxPath,
    Profile,
    SaveEngine,
    SessionFromOnnx,
)

TrtRunner = EngineRunner  # Polygraphy's name

__all__ = ["AccuracyResult", "BytesFromPath", "Comparator", "CompareFunc", "CreateConfig", "DataLoader",
    "EngineBytesFromNetwork", "EngineFromBytes", "EngineFromNetwork", "EngineRunner", "NetworkFromOnnxPath",
    "OnnxrtRunner", "Profile", "RunResults", "Runner", "SaveEngine", "SessionFromOnnx", "TensorMetadata",
    "TrtRunner"]
