"""Hints for Polygraphy flags that polyx spells differently or does not have: an unknown flag's error names the
polyx equivalent, so someone porting a Polygraphy command line learns the spelling in one step."""
from __future__ import annotations

import re

# Polygraphy flag -> what to use in polyx. Flags polyx accepts under Polygraphy's name (aliases) are not here.
POLYGRAPHY_EQUIVALENTS = {
    "--save-results": "use --save-outputs FILE",
    "--load-results": "use --load-outputs FILE",
    "--save-input-data": "use --save-inputs FILE",
    "--load-input-data": "use --load-inputs FILE",
    "--save-tactic-replay": "use --save-tactics FILE",
    "--load-tactic-replay": "use --load-tactics FILE",
    "--execution-providers": "use --providers NAME ...",
    "--iters": "use --iterations N",
    "--abs-tol": "use --atol",
    "--rel-tol": "use --rtol",
    "--silent": "use -q",
    "--warm-up": "polyx bench takes --warmup MS",
    "--trt-exclude-outputs": "mark the wanted tensors with --engine-outputs NAME ... instead",
    "--trt-outputs-by-type": "mark the wanted tensors with --engine-outputs NAME ... instead",
    "--model-type": "not needed: polyx reads .onnx models and engine plans by their content",
    "--convert-to": "polyx convert always writes an engine plan (-o FILE)",
    "--bf16": "commands that build (run, convert, bench, debug) take --bf16",
    "--fp8": "not supported by the engine; use --fp16, --bf16 or --int8",
    "--strongly-typed": "commands that build (run, convert, bench, debug) take --strongly-typed",
    "--calibration-cache": "commands that build (run, convert, bench, debug) take --calibration-cache with --int8",
    "--use-dla": "the engine has no DLA; build for --device cpu|gpu",
    "--allow-gpu-fallback": "the engine has no DLA; build for --device cpu|gpu",
    "--sparse-weights": "structured sparsity is not supported by the engine",
    "--trt-config-script": "configure the build with build options, or from Python with polyx.api.CreateConfig",
    "--trt-config-postprocess-script": "configure the build from Python with polyx.build.BuildOptions",
    "--trt-network-postprocess-script": "edit the network from Python (engine.OnnxParser, then polyx.build)",
    "--trt-npps": "edit the network from Python (engine.OnnxParser, then polyx.build)",
    "--plugins": "commands that parse a model (run, convert, bench, debug, inspect, plugin) take --plugins FILE.py",
    "--ext": "not needed: external data next to the model is read automatically",
    "--shape-inference": "ONNX shape inference runs by default (polyx surgeon sanitize for more)",
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
