"""The builder's pass pipeline, in order. Each pass edits the (copied) network in place and reports what it did."""
from __future__ import annotations

from collections.abc import Callable

from ..logger import Severity
from ..network import NetworkDefinition
from ..shape_inference import infer_network
from .eliminate import remove_dead_layers, remove_noop_layers
from .fold import fold_constants
from .fuse import fuse_activations, fuse_conv_scale
from .fuse_patterns import fuse_conv_residual, fuse_gelu, fuse_matmul_bias
from .precision import assign_precisions


def run_passes(network: NetworkDefinition, fp16: bool, constraints: str,
               log: Callable[[int, str], None]) -> dict[str, int]:
    report: dict[str, int] = {}

    def record(name: str, items) -> None:
        count = items if isinstance(items, int) else len(items)
        report[name] = count
        log(Severity.VERBOSE if not count else Severity.INFO, f"pass {name}: {count}")
        if not isinstance(items, int) and items:
            log(Severity.VERBOSE, f"pass {name}: " + ", ".join(items[:50]) + (" ..." if len(items) > 50 else ""))

    record("constant_folding", fold_constants(network))
    record("dead_layer_elimination", remove_dead_layers(network))
    record("noop_elimination", remove_noop_layers(network))
    record("conv_scale_fusion", fuse_conv_scale(network))
    record("matmul_bias_fusion", fuse_matmul_bias(network))
    record("gelu_fusion", fuse_gelu(network))
    record("conv_residual_fusion", fuse_conv_residual(network))
    record("activation_fusion", fuse_activations(network))
    record("dead_layer_elimination_2", remove_dead_layers(network))
    infer_network(network)
    record("reformats_inserted", assign_precisions(network, fp16, constraints,
                                                   lambda msg: log(Severity.WARNING, msg)))
    # FP32 weights whose FP16 copies replaced them would otherwise stay in the plan
    record("dead_layer_elimination_3", remove_dead_layers(network))
    return report
