"""GPU reformat tactic: the precision or format conversion as one cast-and-copy kernel straight into the output
buffer (the reference kernel makes a converted temporary and copies it: two passes). CuPy is imported inside
functions: this module is imported on every machine."""
from __future__ import annotations

from ..enums import LayerType
from ..tensor_formats import STRIDED_FORMATS
from .base import Tactic, stable_tactic_id
from .registry import register_tactic


class CastCopy(Tactic):
    name = "gpu:reformat:cast_copy"
    id = stable_tactic_id(name)
    layer_type = LayerType.REFORMAT
    backend = "gpu"
    heuristic_rank = 20
    # copyto indexes both sides through their strides: the same kernel converts between LINEAR and HWC
    formats = STRIDED_FORMATS

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        xp.copyto(outputs[0], inputs[0], casting="unsafe")


register_tactic(CastCopy())
