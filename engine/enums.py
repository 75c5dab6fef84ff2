"""Layer types and the per-layer operation enums (TensorRT 8.6 names).

Every enum is a `str` Enum so layer parameters stay JSON-serializable in the plan: a parameter stored as
`ActivationType.RELU` is written as "RELU" and compares equal to it after loading.
"""
from __future__ import annotations

from enum import Enum, IntEnum
from typing import Any


class _StrEnum(str, Enum):
    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.value}"


class LayerType(_StrEnum):
    CONVOLUTION = "CONVOLUTION"
    DECONVOLUTION = "DECONVOLUTION"
    POOLING = "POOLING"
    ACTIVATION = "ACTIVATION"
    PARAMETRIC_RELU = "PARAMETRIC_RELU"
    ELEMENTWISE = "ELEMENTWISE"
    UNARY = "UNARY"
    MATRIX_MULTIPLY = "MATRIX_MULTIPLY"
    EINSUM = "EINSUM"
    SHUFFLE = "SHUFFLE"
    REDUCE = "REDUCE"
    SOFTMAX = "SOFTMAX"
    CONCATENATION = "CONCATENATION"
    SLICE = "SLICE"
    SPLIT = "SPLIT"
    GATHER = "GATHER"
    SCATTER = "SCATTER"
    CONSTANT = "CONSTANT"
    IDENTITY = "IDENTITY"
    CAST = "CAST"
    TOPK = "TOPK"
    RESIZE = "RESIZE"
    SELECT = "SELECT"
    NORMALIZATION = "NORMALIZATION"
    SCALE = "SCALE"
    SHAPE = "SHAPE"
    PADDING = "PADDING"
    LRN = "LRN"
    ONE_HOT = "ONE_HOT"
    FILL = "FILL"
    NON_ZERO = "NON_ZERO"
    NMS = "NMS"
    UNIQUE = "UNIQUE"
    COL2IM = "COL2IM"
    ROI_ALIGN = "ROI_ALIGN"
    REVERSE_SEQUENCE = "REVERSE_SEQUENCE"
    GRID_SAMPLE = "GRID_SAMPLE"
    CUMULATIVE = "CUMULATIVE"
    TRILU = "TRILU"
    EXPAND = "EXPAND"
    TILE = "TILE"
    DEPTH_TO_SPACE = "DEPTH_TO_SPACE"
    SPACE_TO_DEPTH = "SPACE_TO_DEPTH"
    ARG_REDUCE = "ARG_REDUCE"
    QUANTIZE = "QUANTIZE"
    DEQUANTIZE = "DEQUANTIZE"
    PLUGIN_V2 = "PLUGIN_V2"
    REFORMAT = "REFORMAT"
    POINTWISE = "POINTWISE"      # fused elementwise/activation/unary chains (passes/pointwise_fusion.py)
    CONDITIONAL = "CONDITIONAL"  # an if-conditional: two branch subgraphs (engine/control_flow.py)
    LOOP = "LOOP"                # a loop: one body subgraph run per iteration (engine/control_flow.py)
    RNN_V2 = "RNN_V2"            # LSTM/GRU/RNN over a sequence (engine/ops/recurrent*.py)
    ATTENTION = "ATTENTION"      # fused softmax(q @ k^T * scale + mask) @ v (engine/ops/attention.py)
    MASKED_SOFTMAX = "MASKED_SOFTMAX"  # fused softmax(scores + mask) (engine/ops/masked_softmax.py)
    RESIDUAL_NORMALIZATION = "RESIDUAL_NORMALIZATION"  # fused LayerNorm(x + residual) (ops/residual_normalization.py)
    MISC = "MISC"


class ActivationType(_StrEnum):
    RELU = "RELU"
    SIGMOID = "SIGMOID"
    TANH = "TANH"
    LEAKY_RELU = "LEAKY_RELU"
    ELU = "ELU"
    SELU = "SELU"
    SOFTSIGN = "SOFTSIGN"
    SOFTPLUS = "SOFTPLUS"
    CLIP = "CLIP"
    HARD_SIGMOID = "HARD_SIGMOID"
    SCALED_TANH = "SCALED_TANH"
    THRESHOLDED_RELU = "THRESHOLDED_RELU"
    GELU_ERF = "GELU_ERF"
    GELU_TANH = "GELU_TANH"
    CELU = "CELU"
    MISH = "MISH"
    HARD_SWISH = "HARD_SWISH"
    SWISH = "SWISH"


class ElementWiseOperation(_StrEnum):
    SUM = "SUM"
    PROD = "PROD"
    MAX = "MAX"
    MIN = "MIN"
    SUB = "SUB"
    DIV = "DIV"
    POW = "POW"
    FLOOR_DIV = "FLOOR_DIV"
    AND = "AND"
    OR = "OR"
    XOR = "XOR"
    EQUAL = "EQUAL"
    GREATER = "GREATER"
    LESS = "LESS"
    GREATER_OR_EQUAL = "GREATER_OR_EQUAL"
    LESS_OR_EQUAL = "LESS_OR_EQUAL"
    MOD = "MOD"
    FMOD = "FMOD"
    BITWISE_AND = "BITWISE_AND"
    BITWISE_OR = "BITWISE_OR"
    BITWISE_XOR = "BITWISE_XOR"
    BIT_SHIFT_LEFT = "BIT_SHIFT_LEFT"
    BIT_SHIFT_RIGHT = "BIT_SHIFT_RIGHT"


class UnaryOperation(_StrEnum):
    EXP = "EXP"
    LOG = "LOG"
    SQRT = "SQRT"
    RECIP = "RECIP"
    ABS = "ABS"
    NEG = "NEG"
    SIN = "SIN"
    COS = "COS"
    TAN = "TAN"
    SINH = "SINH"
    COSH = "COSH"
    ASIN = "ASIN"
    ACOS = "ACOS"
    ATAN = "ATAN"
    ASINH = "ASINH"
    ACOSH = "ACOSH"
    ATANH = "ATANH"
    CEIL = "CEIL"
    FLOOR = "FLOOR"
    ERF = "ERF"
    NOT = "NOT"
    SIGN = "SIGN"
    ROUND = "ROUND"
    ISINF = "ISINF"
    ISNAN = "ISNAN"
    BITWISE_NOT = "BITWISE_NOT"


class ReduceOperation(_StrEnum):
    SUM = "SUM"
    PROD = "PROD"
    MAX = "MAX"
    MIN = "MIN"
    AVG = "AVG"


class PoolingType(_StrEnum):
    MAX = "MAX"
    AVERAGE = "AVERAGE"
    LP = "LP"


class MatrixOperation(_StrEnum):
    NONE = "NONE"
    TRANSPOSE = "TRANSPOSE"
    VECTOR = "VECTOR"


class TopKOperation(_StrEnum):
    MAX = "MAX"
    MIN = "MIN"


class PaddingMode(_StrEnum):
    EXPLICIT_ROUND_DOWN = "EXPLICIT_ROUND_DOWN"
    EXPLICIT_ROUND_UP = "EXPLICIT_ROUND_UP"
    SAME_UPPER = "SAME_UPPER"
    SAME_LOWER = "SAME_LOWER"


class BoundingBoxFormat(_StrEnum):
    """How an NMS layer reads its boxes (TensorRT's trt.BoundingBoxFormat)."""

    CORNER_PAIRS = "CORNER_PAIRS"  # [y1, x1, y2, x2], any two opposite corners (ONNX center_point_box=0)
    CENTER_SIZES = "CENTER_SIZES"  # [x_center, y_center, width, height] (ONNX center_point_box=1)


class TensorFormat(_StrEnum):
    """How a tensor is laid out in memory (TensorRT's trt.TensorFormat names). Its dims stay NCHW-ordered either
    way; HWC stores a 4-D tensor channels-last (NHWC strides), chosen only by BuilderConfig.channels_last
    (engine/passes/tensor_formats.py)."""

    LINEAR = "LINEAR"  # row-major in the order of the dims (NCHW)
    HWC = "HWC"        # channels last: N, H, W, C in memory


class ScaleMode(_StrEnum):
    UNIFORM = "UNIFORM"
    CHANNEL = "CHANNEL"
    ELEMENTWISE = "ELEMENTWISE"


class TripLimit(_StrEnum):
    """How a loop's trip count is limited (TensorRT's TripLimit): COUNT by an int scalar read before the loop,
    WHILE by a bool scalar of the body, read before each iteration."""

    COUNT = "COUNT"
    WHILE = "WHILE"


class LoopOutput(_StrEnum):
    """What a loop output holds (TensorRT's LoopOutput): the LAST_VALUE of a body tensor, or its values of every
    iteration stacked along a new axis (CONCATENATE) or stacked last iteration first (REVERSE)."""

    LAST_VALUE = "LAST_VALUE"
    CONCATENATE = "CONCATENATE"
    REVERSE = "REVERSE"


class RNNOperation(_StrEnum):
    """The cell of an RNN_V2 layer (ONNX's op names; TensorRT's RELU/TANH cells are RNN with that activation)."""

    RNN = "RNN"
    LSTM = "LSTM"
    GRU = "GRU"


class RNNDirection(_StrEnum):
    """Which way an RNN_V2 layer walks the sequence (ONNX's `direction`, which has reverse; TensorRT's has not)."""

    FORWARD = "FORWARD"
    REVERSE = "REVERSE"
    BIDIRECTIONAL = "BIDIRECTIONAL"


class TensorIOMode(_StrEnum):
    NONE = "NONE"
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"


class TacticSource(IntEnum):
    """Kernel libraries a tactic depends on; `BuilderConfig.set_tactic_sources` takes a bit mask of them and the
    builder skips tactics whose source is cleared. TensorRT 8.6 values. Here: CUBLAS marks the GPU GEMM tactics
    (matmul and the im2col/pointwise GEMM convolutions, cuBLAS directly or through CuPy), CUDNN the cuDNN frontend's
    fused convolution graphs (one tactic per cuDNN engine), JIT_CONVOLUTIONS the NVRTC-compiled convolution kernels,
    CUBLAS_LT the cuBLASLt GEMMs with bias/activation epilogues and heuristic-ranked algorithms
    (tactics/gpu_cublaslt.py, through nvmath-python; HWC 1x1 convolutions too, tactics/gpu_cublaslt_conv.py);
    EDGE_MASK_CONVOLUTIONS marks no tactic yet. Tactics
    with no source (reference kernels, every CPU tactic, the GPU pointwise/pooling/softmax kernels) are always
    available, as TensorRT's built-in kernels are, so every layer stays buildable whatever the mask."""

    CUBLAS = 0
    CUBLAS_LT = 1
    CUDNN = 2
    EDGE_MASK_CONVOLUTIONS = 3
    JIT_CONVOLUTIONS = 4


ALL_TACTIC_SOURCES = sum(1 << int(source) for source in TacticSource)


def allowed_by_sources(tactic: Any, sources: int) -> bool:
    """Whether `tactic` may run under the tactic-source bit mask `sources` (a tactic without a source always may)."""
    source = getattr(tactic, "source", None)
    return source is None or bool(int(sources) >> int(source) & 1)
