"""The build flags every engine-building command shares (`run`, `convert`, `bench`, `debug`), and their parsers.

Use `@with_build_options` on a typer command that takes a `build_options: BuildOptions` parameter: the decorator
adds the flags below to the command's signature and hands the command one parsed BuildOptions.

Value formats (Polygraphy's spelling): shapes `NAME:[1,3,224,224]` (repeat the flag, or give several specs in
one quoted value); sizes `1G`, `512M`, `64K`, `1073741824` (binary units: 1K = 1024 bytes; `MiB`/`MB` read
the same); layer precisions `NAME:fp32` or a JSON file `{"NAME": "fp16"}`; tactic sources `cublas cudnn ...`
(TacticSource names, any case).
"""
from __future__ import annotations

import functools
import inspect
import json
import math
import re
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from engine import MemoryPoolType, TacticSource
from engine.config import channels_last_mode

from ..build import BuildOptions, ProfileShapes
from ..compare import Tolerances
from ..compare.tolerance import DEFAULT_ATOL, DEFAULT_ERROR_QUANTILE, DEFAULT_RTOL
from ..errors import PolyxError
from ..plugin_modules import load_plugin_modules

_SHAPE_SPEC = re.compile(r"\s*(?P<name>.+?):\s*\[(?P<dims>[^\]]*)\]\s*")
# 4096, 4096B, 64K, 64KB, 64KiB, 64Ki, 1.5M, 2GiB, 1T (powers of 1024, any case)
_SIZE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?:(?P<unit>[KMGT])I?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
PANEL = "Build options"


class PrecisionConstraints(str, Enum):
    obey = "obey"
    prefer = "prefer"
    none = "none"


class HardwareLevel(str, Enum):
    none = "none"
    ampere_plus = "ampere_plus"


class Verbosity(str, Enum):
    detailed = "detailed"
    layer_names_only = "layer_names_only"
    none = "none"


class Device(str, Enum):
    cpu = "cpu"
    gpu = "gpu"
    auto = "auto"


class ChannelsLast(str, Enum):
    """--channels-last: off, on (every convolution chain HWC; a bare --channels-last), or auto (timed per chain)."""

    off = "off"
    on = "on"
    auto = "auto"


def _shape_specs(values: list[str] | None, flag: str) -> typing.Iterator[tuple[str, str, tuple[int, ...]]]:
    """(value, name, shape) for every NAME:[d0,...] spec of the flag's values, in order."""
    for value in values or []:
        position = 0
        while position < len(value):
            match = _SHAPE_SPEC.match(value, position)
            if match is None:
                raise PolyxError(f"{flag} '{value}': expected NAME:[d0,d1,...] (e.g. input:[1,3,224,224])")
            name, dims = match["name"].strip(), match["dims"].strip()
            try:
                shape = tuple(int(d) for d in dims.split(",")) if dims else ()
            except ValueError:
                raise PolyxError(f"{flag} '{value}': dimensions of '{name}' must be integers, got [{dims}]") from None
            if any(d < 0 for d in shape):
                raise PolyxError(f"{flag} '{value}': dimensions of '{name}' must be >= 0, got {list(shape)}")
            yield value, name, shape
            position = match.end()


def parse_shapes(values: list[str] | None, flag: str) -> dict[str, tuple[int, ...]]:
    """`["x:[1,3,224,224]", "y:[2] z:[]"]` -> {"x": (1, 3, 224, 224), "y": (2,), "z": ()}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for _, name, shape in _shape_specs(values, flag):
        if name in shapes:
            raise PolyxError(f"{flag}: '{name}' is given twice")
        shapes[name] = shape
    return shapes


def parse_profile_shapes(values: list[str] | None, flag: str) -> list[dict[str, tuple[int, ...]]]:
    """Shapes per optimization profile: the k-th spec of an input name belongs to profile k, so repeating the
    min/opt/max group starts a new profile (Polygraphy) while `--min-shapes a:[1] --min-shapes b:[1]` stays one."""
    profiles: list[dict[str, tuple[int, ...]]] = []
    for _, name, shape in _shape_specs(values, flag):
        index = next((i for i, profile in enumerate(profiles) if name not in profile), len(profiles))
        if index == len(profiles):
            profiles.append({})
        profiles[index][name] = shape
    return profiles


def parse_profiles(min_shapes: list[str] | None, opt_shapes: list[str] | None,
                   max_shapes: list[str] | None) -> list[ProfileShapes]:
    """The optimization profiles of the --min/--opt/--max-shapes flags (none when no flag is given)."""
    per_flag = [parse_profile_shapes(values, flag) for values, flag in
                ((min_shapes, "--min-shapes"), (opt_shapes, "--opt-shapes"), (max_shapes, "--max-shapes"))]
    count = max(len(profiles) for profiles in per_flag)
    return [ProfileShapes(*(profiles[i] if i < len(profiles) else {} for profiles in per_flag)) for i in range(count)]


def parse_size(value: str | None, flag: str) -> int | None:
    """`1G` -> 1073741824 (binary units); None stays None. Every size flag (--workspace, surgeon's
    --size-threshold) parses here, so they accept the same spellings."""
    if value is None:
        return None
    match = _SIZE.match(value)
    if match is None:
        raise PolyxError(f"{flag} '{value}': expected a size such as 1G, 512M, 64K or a number of bytes")
    return int(float(match["number"]) * _UNITS[(match["unit"] or "").upper()])


def parse_name_value(value: str, flag: str, example: str) -> tuple[str, str]:
    """`NAME:VALUE` split at the last colon (tensor names may contain colons)."""
    name, sep, rest = value.rpartition(":")
    if not sep or not name.strip() or not rest.strip():
        raise PolyxError(f"{flag} '{value}': expected NAME:VALUE (e.g. {example})")
    return name.strip(), rest.strip()


def parse_tactic_sources(values: list[str] | None) -> list[str] | None:
    """`["cublas", "JIT_convolutions"]` -> ["CUBLAS", "JIT_CONVOLUTIONS"]; None (flag not given) allows every source."""
    if values is None:
        return None
    valid = [source.name for source in TacticSource]
    names = []
    for value in values:
        name = value.strip().upper()
        if name not in valid:
            raise PolyxError(f"--tactic-sources '{value}': unknown tactic source (valid: "
                             f"{', '.join(v.lower() for v in valid)})")
        if name not in names:
            names.append(name)
    return names


def parse_layer_precisions(values: list[str] | None, file: Path | None) -> dict[str, str]:
    """From the file first, then the flags (a flag overrides the file for the same layer)."""
    precisions: dict[str, str] = {}
    if file is not None:
        if not file.is_file():
            raise PolyxError(f"{file}: no such file (--layer-precisions-file)")
        try:
            doc = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PolyxError(f"{file}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
            raise PolyxError(f"{file}: expected a JSON object {{\"layer name\": \"fp32\" | \"fp16\" | \"int8\"}}")
        precisions.update(doc)
    for value in values or []:
        name, precision = parse_name_value(value, "--layer-precisions", "conv1:fp32")
        precisions[name] = precision
    return precisions


def parse_value_ranges(values: list[str] | None) -> dict[str, tuple[float, float]]:
    """`NAME:[lo,hi]` per input, or `[lo,hi]` for every input (stored under the name "")."""
    ranges: dict[str, tuple[float, float]] = {}
    for value in values or []:
        text = value.strip()
        name, bounds = ("", text) if text.startswith("[") else (text.rpartition(":")[0], text.rpartition(":")[2])
        match = re.fullmatch(r"\s*\[\s*([^,\]]+)\s*,\s*([^,\]]+)\s*\]\s*", bounds)
        try:
            lo, hi = float(match[1]), float(match[2])
        except (TypeError, ValueError):
            raise PolyxError(f"--val-range '{value}': expected NAME:[lo,hi] or [lo,hi] (e.g. input:[0,1])") from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise PolyxError(f"--val-range '{value}': bounds must be finite numbers, got [{lo}, {hi}]")
        if lo > hi:
            raise PolyxError(f"--val-range '{value}': low {lo} is above high {hi}")
        ranges[name.strip()] = (lo, hi)
    return ranges


def parse_tolerances(values: list[str] | None, flag: str) -> tuple[float | None, dict[str, float]]:
    """`["1e-3", "out0:1e-2"]` -> (1e-3, {"out0": 1e-2}); a bare number sets the global tolerance."""
    default, per_output = None, {}
    for value in values or []:
        try:
            number = float(value)
            name = None
        except ValueError:
            name, text = parse_name_value(value, flag, "out0:1e-3")
            try:
                number = float(text)
            except ValueError:
                raise PolyxError(f"{flag} '{value}': '{text}' is not a number") from None
        if not number >= 0:
            raise PolyxError(f"{flag} '{value}': a tolerance must be >= 0")
        if name is None:
            default = number
        else:
            per_output[name] = number
    return default, per_output


def tolerances_from_flags(atol: list[str] | None, rtol: list[str] | None,
                          check_error_stat: str = "elemwise",
                          error_quantile: float = DEFAULT_ERROR_QUANTILE) -> Tolerances:
    """The Tolerances of `--atol`/`--rtol` flags (run and debug take the same ones); unset globals get the defaults."""
    default_atol, per_output_atol = parse_tolerances(atol, "--atol")
    default_rtol, per_output_rtol = parse_tolerances(rtol, "--rtol")
    return Tolerances(atol=DEFAULT_ATOL if default_atol is None else default_atol,
                      rtol=DEFAULT_RTOL if default_rtol is None else default_rtol,
                      per_output_atol=per_output_atol, per_output_rtol=per_output_rtol,
                      check_error_stat=check_error_stat, error_quantile=error_quantile)


def _option(*names: str, help: str, **kwargs) -> typer.models.OptionInfo:
    return typer.Option(*names, help=help, rich_help_panel=PANEL, **kwargs)


# (parameter name, annotation, default); the order is the order in --help.
_BUILD_PARAMETERS = [
    ("input_shapes", Annotated[list[str] | None, _option(
        "--input-shapes", help="Input shape NAME:[1,3,224,224] (repeatable); min = opt = max for the engine.")], None),
    ("min_shapes", Annotated[list[str] | None, _option(
        "--min-shapes", "--trt-min-shapes", help="Profile minimum shape NAME:[...] (repeatable; an input named "
                                                 "again starts the next profile).")], None),
    ("opt_shapes", Annotated[list[str] | None, _option(
        "--opt-shapes", "--trt-opt-shapes", help="Profile optimum shape NAME:[...] (repeatable); also the "
                                                 "generated data's shape.")], None),
    ("max_shapes", Annotated[list[str] | None, _option(
        "--max-shapes", "--trt-max-shapes", help="Profile maximum shape NAME:[...] (repeatable).")], None),
    ("optimization_profile", Annotated[int, _option(
        "--optimization-profile", help="Index of the optimization profile a run uses (default 0).", min=0)], 0),
    ("fp16", Annotated[bool, _option("--fp16", help="Allow FP16 layers.")], False),
    ("bf16", Annotated[bool, _option("--bf16", help="Allow BF16 layers (bfloat16 storage, float32 compute; with "
                                                    "--fp16 layers default to FP16).")], False),
    ("strongly_typed", Annotated[bool, _option(
        "--strongly-typed", help="Strongly typed network: every layer runs in the type the model gives its tensors "
                                 "(no --fp16/--bf16/--int8/--layer-precisions).")], False),
    ("version_compatible", Annotated[bool, _option(
        "--version-compatible", help="Let other engine versions load the plan (BuilderFlag.VERSION_COMPATIBLE).")],
     False),
    ("hardware_compatibility_level", Annotated[HardwareLevel, _option(
        "--hardware-compatibility-level", help="none: the plan loads only on the build GPU's compute capability; "
                                               "ampere_plus: on any sm_80+ GPU.", case_sensitive=False)],
     HardwareLevel.none),
    ("profiling_verbosity", Annotated[Verbosity, _option(
        "--profiling-verbosity", help="What the plan shows of its layers: detailed (tactics, formats, epilogues; "
                                      "NVTX ranges per layer on the GPU), layer_names_only, or none.",
        case_sensitive=False)], Verbosity.detailed),
    ("tf32", Annotated[bool, _option("--tf32", help="Allow TF32 math (GPU).")], False),
    ("int8", Annotated[bool, _option("--int8", help="Allow INT8 (BuilderFlag.INT8): Q/DQ models run their "
                                                    "quantized layers in INT8 (with or without it); other models "
                                                    "are calibrated on the run's input data.")], False),
    ("calibration_cache", Annotated[Path | None, _option(
        "--calibration-cache", help="INT8 calibration cache (TensorRT's format): read when it exists (no "
                                    "calibration), written after calibrating otherwise.")], None),
    ("calib_base_cls", Annotated[str, _option(
        "--calib-base-cls", help="INT8 calibrator: EntropyCalibrator2, EntropyCalibrator, MinMaxCalibrator or "
                                 "LegacyCalibrator.")], "EntropyCalibrator2"),
    ("precision_constraints", Annotated[PrecisionConstraints | None, _option(
        "--precision-constraints", help="obey | prefer | none. Default: obey when layer precisions are given, "
                                        "else none.", case_sensitive=False)], None),
    ("layer_precisions", Annotated[list[str] | None, _option(
        "--layer-precisions", help="Layer (or ONNX node) precision NAME:fp32|fp16|bf16|int8 (repeatable).")], None),
    ("layer_precisions_file", Annotated[Path | None, _option(
        "--layer-precisions-file", help="JSON file {\"layer\": \"fp32\"} (fp32, fp16, bf16 or int8).")], None),
    ("workspace", Annotated[str | None, _option(
        "--workspace", help="Workspace limit for tactics, e.g. 1G, 512M (binary units).")], None),
    ("pool_limit", Annotated[list[str] | None, _option(
        "--pool-limit", "--memory-pool-limit", help="Memory pool limit POOL:SIZE, e.g. workspace:1G "
                                                    "(Polygraphy's spelling of --workspace).")], None),
    ("timing_cache", Annotated[Path | None, _option(
        "--timing-cache", help="Timing cache file: read when it exists, written after the build.")], None),
    ("load_timing_cache", Annotated[Path | None, _option(
        "--load-timing-cache", help="Read the timing cache from this file (it must exist).")], None),
    ("save_timing_cache", Annotated[Path | None, _option(
        "--save-timing-cache", help="Write the timing cache to this file after the build.")], None),
    ("save_tactics", Annotated[Path | None, _option(
        "--save-tactics", help="Write the tactic chosen for every layer (JSON replay file).")], None),
    ("load_tactics", Annotated[Path | None, _option(
        "--load-tactics", help="Force the tactics of a replay file written by --save-tactics.")], None),
    ("builder_optimization_level", Annotated[int, _option(
        "--builder-optimization-level", help="0 (no timing, heuristic choice) .. 5 (most timing).",
        min=0, max=5)], 3),
    ("tactic_sources", Annotated[list[str] | None, _option(
        "--tactic-sources", help="Allow only these tactic sources, e.g. cublas jit_convolutions (case-insensitive; "
                                 "several values after one flag). Default: all.")], None),
    ("device", Annotated[Device, _option("--device", help="Engine device.", case_sensitive=False)], Device.auto),
    ("pointwise_fusion", Annotated[bool, _option(
        "--pointwise-fusion", help="Fuse chains of elementwise, activation and unary layers into one POINTWISE "
                                   "layer (one generated kernel on the GPU).")], False),
    ("channels_last", Annotated[ChannelsLast, _option(
        "--channels-last", help="Run 4-D convolution chains in channels-last (NHWC, TensorFormat.HWC) memory, "
                                "with REFORMAT layers at the chains' ends; inputs and outputs stay NCHW. on (also "
                                "a bare --channels-last): every chain; auto: each chain whose layers time faster "
                                "HWC; off: none.", case_sensitive=False)], ChannelsLast.off),
    ("plugins", Annotated[list[Path] | None, _option(
        "--plugins", help="Python modules that register plugins (engine.register_plugin), loaded before parsing "
                          "(several values after one flag).")], None),
]
BUILD_PARAMETER_NAMES = [name for name, _, _ in _BUILD_PARAMETERS]


def build_options_from_cli(input_shapes=None, min_shapes=None, opt_shapes=None, max_shapes=None,
                           optimization_profile=0, fp16=False, bf16=False, strongly_typed=False,
                           version_compatible=False, hardware_compatibility_level=HardwareLevel.none,
                           profiling_verbosity=Verbosity.detailed, tf32=False, int8=False, calibration_cache=None,
                           calib_base_cls="EntropyCalibrator2",
                           precision_constraints=None, layer_precisions=None,
                           layer_precisions_file=None, workspace=None, pool_limit=None, timing_cache=None,
                           load_timing_cache=None, save_timing_cache=None, save_tactics=None,
                           load_tactics=None, builder_optimization_level=3, tactic_sources=None,
                           device=Device.auto, pointwise_fusion=False, channels_last=ChannelsLast.off,
                           plugins=None) -> BuildOptions:
    """The flags' raw values -> a validated BuildOptions (PolyxError names the flag at fault). Plugin modules are
    imported here, before any model is parsed."""
    load_plugin_modules(plugins)
    profiles = parse_profiles(min_shapes, opt_shapes, max_shapes) or [ProfileShapes()]
    options = BuildOptions(
        input_shapes=parse_shapes(input_shapes, "--input-shapes"),
        min_shapes=profiles[0].min, opt_shapes=profiles[0].opt, max_shapes=profiles[0].max,
        extra_profiles=profiles[1:], profile_index=optimization_profile,
        fp16=fp16, bf16=bf16, strongly_typed=strongly_typed, version_compatible=version_compatible,
        hardware_compatibility_level=HardwareLevel(hardware_compatibility_level).value,
        profiling_verbosity=Verbosity(profiling_verbosity).value, tf32=tf32, int8=int8,
        calibration_cache=calibration_cache, calib_base_cls=calib_base_cls,
        precision_constraints=precision_constraints.value if precision_constraints is not None else None,
        layer_precisions=parse_layer_precisions(layer_precisions, layer_precisions_file),
        workspace_bytes=_workspace_bytes(workspace, pool_limit),
        optimization_level=builder_optimization_level, tactic_sources=parse_tactic_sources(tactic_sources),
        device=Device(device).value, pointwise_fusion=pointwise_fusion,
        channels_last=_channels_last(channels_last),
        timing_cache=timing_cache, load_timing_cache=load_timing_cache, save_timing_cache=save_timing_cache,
        save_tactics=save_tactics, load_tactics=load_tactics)
    options.validate()
    return options


def _channels_last(value: ChannelsLast | bool | str) -> bool | str:
    """The flag's word as BuilderConfig.channels_last takes it: False, True or "auto", read by the engine's own
    rule (engine.config.channels_last_mode; a bool passes through, for callers that still pass one)."""
    return channels_last_mode(value.value if isinstance(value, ChannelsLast) else value, "--channels-last")


def parse_pool_limits(values: list[str] | None) -> dict[str, int]:
    """`["workspace:1G"]` -> {"WORKSPACE": 1073741824}; pools the engine lacks (TensorRT's DLA and tactic pools)
    are refused rather than ignored."""
    pools = {pool.name for pool in MemoryPoolType}
    limits: dict[str, int] = {}
    for value in values or []:
        name, size = parse_name_value(value, "--pool-limit", "workspace:1G")
        pool = name.upper()
        if pool not in pools:
            raise PolyxError(f"--pool-limit '{value}': the engine has no memory pool '{name}' "
                             f"(pools: {', '.join(p.lower() for p in sorted(pools))})")
        limits[pool] = parse_size(size, "--pool-limit")
    return limits


def _workspace_bytes(workspace: str | None, pool_limit: list[str] | None) -> int | None:
    from_pool = parse_pool_limits(pool_limit).get("WORKSPACE")
    from_flag = parse_size(workspace, "--workspace")
    if from_pool is not None and from_flag is not None and from_pool != from_flag:
        raise PolyxError(f"--workspace {workspace} and --pool-limit workspace:{from_pool} disagree; pass one")
    return from_flag if from_pool is None else from_pool


def with_build_options(command: typing.Callable) -> typing.Callable:
    """Adds the shared build flags to a typer command; it receives them parsed, as `build_options`."""
    hints = typing.get_type_hints(command, include_extras=True)
    own = [parameter.replace(annotation=hints.get(parameter.name, parameter.annotation))
           for parameter in inspect.signature(command).parameters.values() if parameter.name != "build_options"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
             for name, annotation, default in _BUILD_PARAMETERS]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        raw = {name: kwargs.pop(name) for name in BUILD_PARAMETER_NAMES if name in kwargs}
        return command(*args, build_options=build_options_from_cli(**raw), **kwargs)

    parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + added
    wrapper.__signature__ = inspect.Signature(parameters)
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


# Build flags that take several values after one flag, Polygraphy style: `--input-shapes a:[1,3] b:[1]`.
MULTI_VALUE_BUILD_OPTIONS = ("--input-shapes", "--min-shapes", "--opt-shapes", "--max-shapes", "--trt-min-shapes",
                             "--trt-opt-shapes", "--trt-max-shapes", "--layer-precisions", "--tactic-sources",
                             "--pool-limit", "--memory-pool-limit", "--plugins")
