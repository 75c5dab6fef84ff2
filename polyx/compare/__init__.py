"""Comparing runner outputs: statistics, tolerance checks, the Comparator, and per-layer (first divergence) analysis."""
from .comparator import Comparator, TensorComparison
from .layerwise import GraphNode, LayerwiseReport, analyze_layers, nodes_from_engine, nodes_from_onnx
from .statistics import DiffStats, TensorStats, error_histogram
from .tolerance import CHECK_ERROR_STATS, Tolerances

__all__ = ["Comparator", "TensorComparison", "GraphNode", "LayerwiseReport", "analyze_layers", "nodes_from_engine",
           "nodes_from_onnx", "DiffStats", "TensorStats", "error_histogram", "CHECK_ERROR_STATS", "Tolerances"]
