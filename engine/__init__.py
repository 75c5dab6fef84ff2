"""polyx engine: a TensorRT-8.6-style builder and runtime for ONNX models (NumPy on CPU, CuPy on GPU).

    import engine as trt
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network = builder.create_network()
    parser = trt.OnnxParser(network, builder.logger)
"""
__version__ = "0.1.0"

from .algorithm_selector import Algorithm, AlgorithmContext, AlgorithmVariant, IAlgorithmSelector  # noqa: E402
from .builder import Builder, NetworkDefinitionCreationFlag  # noqa: E402
from .config import BuilderConfig, BuilderFlag, MemoryPoolType, ProfilingVerbosity, TacticSource  # noqa: E402
from .dtypes import DataType  # noqa: E402
from .enums import (  # noqa: E402
    ActivationType,
    ElementWiseOperation,
    LayerType,
    MatrixOperation,
    PaddingMode,
    PoolingType,
    ReduceOperation,
    ScaleMode,
    TensorIOMode,
    TopKOperation,
    UnaryOperation,
)
from .errors import (  # noqa: E402
    BuildError,
    EngineError,
    ExecutionError,
    ParseError,
    PlanFormatError,
    ShapeError,
    UnsupportedError,
)
from .logger import CapturingLogger, Logger, Severity  # noqa: E402
from .network import Layer, NetworkDefinition, Tensor  # noqa: E402
from .onnx_parser import OnnxParser  # noqa: E402
from .profile import OptimizationProfile  # noqa: E402
from .runtime import Engine, ExecutionContext, IProfiler, Runtime  # noqa: E402
from .tactics import Tactic, TacticContext, register_tactic  # noqa: E402
from .timing_cache import TimingCache  # noqa: E402

ICudaEngine = Engine
IExecutionContext = ExecutionContext
INetworkDefinition = NetworkDefinition
IBuilderConfig = BuilderConfig
IOptimizationProfile = OptimizationProfile
ITimingCache = TimingCache

__all__ = [name for name in dir() if not name.startswith("_")]
