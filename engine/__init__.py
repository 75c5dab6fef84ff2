"""polyx engine: a TensorRT-8.6-style builder and runtime for ONNX models (NumPy on CPU, CuPy on GPU).

    import engine as trt
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network = builder.create_network()
    parser = trt.OnnxParser(network, builder.logger)
"""
from .algorithm_selector import Algorithm, AlgorithmContext, AlgorithmVariant, IAlgorithmSelector
from .builder import Builder, NetworkDefinitionCreationFlag
from .calibrator import (
    CalibrationAlgoType,
    IInt8Calibrator,
    IInt8EntropyCalibrator,
    IInt8EntropyCalibrator2,
    IInt8LegacyCalibrator,
    IInt8MinMaxCalibrator,
)
from .compatibility import HardwareCompatibilityLevel
from .config import BuilderConfig, BuilderFlag, MemoryPoolType, ProfilingVerbosity, TacticSource
from .debug_listener import IDebugListener
from .dtypes import DataType
from .enums import (
    ActivationType,
    BoundingBoxFormat,
    ElementWiseOperation,
    LayerType,
    LoopOutput,
    MatrixOperation,
    PaddingMode,
    PoolingType,
    ReduceOperation,
    RNNDirection,
    RNNOperation,
    ScaleMode,
    TensorFormat,
    TensorIOMode,
    TopKOperation,
    TripLimit,
    UnaryOperation,
)
from .error_recorder import ErrorCode, ErrorRecorder, IErrorRecorder
from .errors import (
    BuildError,
    DataDependentShapeError,
    EngineError,
    ExecutionError,
    OutputFileError,
    ParseError,
    PlanFormatError,
    RefitError,
    ShapeError,
    UnsupportedCategory,
    UnsupportedError,
)
from .gpu_allocator import IGpuAllocator
from .logger import CapturingLogger, Logger, Severity
from .network import Layer, NetworkDefinition, Tensor
from .onnx_parser import OnnxParser
from .onnx_refitter import OnnxParserRefitter
from .output_allocator import HostOutputAllocator, IOutputAllocator
from .plugin import Plugin, get_plugin_registry, plugin_implementation, register_plugin
from .profile import OptimizationProfile
from .refitter import Refitter
from .runtime import Engine, ExecutionContext, IProfiler, Runtime
from .tactics import Tactic, TacticContext, register_tactic
from .timing_cache import TimingCache
from .version import __version__

ICudaEngine = Engine
IExecutionContext = ExecutionContext
INetworkDefinition = NetworkDefinition
IBuilderConfig = BuilderConfig
IOptimizationProfile = OptimizationProfile
ITimingCache = TimingCache

__all__ = [name for name in dir() if not name.startswith("_")]
