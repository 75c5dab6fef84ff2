"""Hints for Polygraphy flags that polyx spells differently or does not have: an unknown flag's error names the
polyx equivalent, so someone porting a Polygraphy command line learns the spelling in one step."""
from __future__ import annotations

import re

# Polygraphy flag -> what to use in polyx. Flags polyx accepts under Polygraphy's name (aliases) are not here.
POLYGRAPHY_EQUIVALENTS = {
    "--save-results": "use --save-outputs FILE",
    "--load-results": "use --load-outputs FILE",
    "--silent": "use -q",
    "--strict-types": "use --precision-constraints obey",
    "--obey-precision-constraints": "use --precision-constraints obey",
    "--prefer-precision-constraints": "use --precision-constraints prefer",
    "--tactic-replay": "use --save-tactics FILE or --load-tactics FILE",
    "--trt-exclude-outputs": "mark the wanted tensors with --engine-outputs NAME ... instead",
    "--onnx-exclude-outputs": "mark the wanted tensors with --onnx-outputs NAME ... instead",
    "--model-type": "not needed: polyx reads .onnx models and engine plans by their content",
    "--convert-to": "polyx convert always writes an engine plan (-o FILE)",
    "--bf16": "not supported by the engine; use --fp16 or --tf32",
    "--fp8": "not supported by the engine; use --fp16 or --tf32",
    "--calibration-cache": "INT8 calibration is not supported yet",
    "--use-dla": "the engine has no DLA; build for --device cpu|gpu",
    "--allow-gpu-fallback": "the engine has no DLA; build for --device cpu|gpu",
    "--sparse-weights": "structured sparsity is not supported by the engine",
    "--trt-config-script": "configure the build with build options, or from Python with polyx.build.BuildOptions",
    "--trt-network-func-name": "build networks from Python with engine.Builder / polyx.build",
    "--ext": "not needed: external data next to the model is read automatically",
    "--shape-inference": "ONNX shape inference runs by default (polyx surgeon sanitize for more)",
    "--top-k": "not supported yet; compare raw outputs with --atol/--rtol",
    "--postprocess": "not supported yet; compare raw outputs with --atol/--rtol",
    "--compare-func": "use --check-error-stat elemwise|max|mean|median",
}
_NO_SUCH_OPTION = re.compile(r"No such option:?\s+'?(?P<flag>--[\w-]+)")


def polygraphy_hint(flag: str) -> str | None:
    """The polyx equivalent of a Polygraphy flag polyx does not accept, or None."""
    return POLYGRAPHY_EQUIVALENTS.get(flag.partition("=")[0])


def with_polygraphy_hint(message: str) -> str:
    """A click "No such option: --X" message with the Polygraphy hint appended (others unchanged)."""
    match = _NO_SUCH_OPTION.search(message)
    hint = polygraphy_hint(match["flag"]) if match else None
    return f"{message} (Polygraphy's {match['flag']}: {hint})" if hint else message
