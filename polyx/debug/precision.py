"""`debug precision`: a small set of layers that must run in FP32 for an FP16 or INT8 engine to meet tolerance.

Every floating-point layer of the parsed network is an item (with --int8 alone: every Convolution and MatMul, the
layers INT8 quantizes); *active* means it runs in the low precision, *reverted* that it is pinned to FP32 through
layer precisions (obeyed). The search (see `group_testing`) first checks the two ends
(plain FP16 must fail, all-FP32 must pass), then finds the layers whose FP16 run alone breaks the tolerance:
bisect mode in about log2(n) + 1 builds per such layer, linear mode in n builds. `direction` orders the layers
(forward: inputs first), so the search meets the earliest (or, reverse, the latest) culprit first.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import engine as trt

from ..build import BuildOptions, parse_onnx
from ..errors import PolyxError
from ..tactic_replay import TacticRecorder
from .checks import Candidate, Verdict, build_candidate, refuse_passing_original, refuse_same_failure
from .group_testing import CulpritSearch, Step
from .journal import VerdictJournal

DIRECTIONS = ("forward", "reverse")
_UNTYPED = (trt.LayerType.CONSTANT, trt.LayerType.SHAPE, trt.LayerType.CAST)
_QUANTIZED = (trt.LayerType.CONVOLUTION, trt.LayerType.MATRIX_MULTIPLY)


@dataclass
class PrecisionDebugResult:
    """What the search found; partial after an interruption."""

    fp32_layers: list[str] = field(default_factory=list)  # the layers that must run in FP32
    candidates: int = 0
    builds: int = 0
    fp16_verdict: Verdict | None = None
    unexplained: str = ""             # why precision cannot explain the failure, when it cannot
    best_passing: list[str] | None = None   # the smallest FP32 set a passing build used so far
    interrupted: bool = False


def float_layers(model: Path, types: tuple[trt.LayerType, ...] | None = None) -> list[str]:
    """Names of the network's floating-point compute layers (of `types`, when given), in network order."""
    network, _ = parse_onnx(model, trt.Logger(trt.Logger.ERROR))
    names = []
    for layer in network.layers:
        tensors = [t for t in [*layer.inputs, *layer.outputs] if t is not None]
        if layer.type not in _UNTYPED and any(t.dtype == trt.DataType.FLOAT for t in tensors) and \
                (types is None or layer.type in types):
            names.append(layer.name)
    return names


def low_precision(options: BuildOptions) -> str:
    """How the searched engine's reduced-precision layers are named in messages."""
    return {(True, False): "FP16", (False, True): "INT8", (True, True): "FP16/INT8"}.get((options.fp16, options.int8),
                                                                                         "FP32")


class PrecisionDebugger:
    """`judge(candidate)` says whether one FP16 build is good; `progress(line)` receives one line per build."""

    def __init__(self, model: Path, options: BuildOptions, judge: Callable[[Candidate], Verdict],
                 mode: str = "bisect", direction: str = "forward", progress: Callable[..., None] | None = None,
                 logger: trt.Logger | None = None, journal: VerdictJournal | None = None):
        if not options.fp16 and not options.int8:
            raise PolyxError("debug precision searches an FP16 or INT8 engine: pass --fp16 or --int8")
        if direction not in DIRECTIONS:
            raise PolyxError(f"--direction must be one of {', '.join(DIRECTIONS)}, got '{direction}'")
        constraints = "prefer" if options.precision_constraints == "prefer" else "obey"
        self.model = Path(model)
        self.options = replace(options, precision_constraints=constraints, save_tactics=None)
        self.judge = judge
        self.mode = mode
        self.direction = direction
        self.progress = progress or (lambda line, done=None, total=None: None)
        self.logger = logger or trt.Logger(trt.Logger.ERROR)
        self.result = PrecisionDebugResult()
        self.last: tuple[str, Verdict] = ("", Verdict(False, ""))
        self.strict = bool(getattr(judge, "is_command", False))  # a user's command: refuse checks that cannot work
        self.journal = journal
        self.low = low_precision(options)

    def run(self) -> PrecisionDebugResult:
        """The search; Ctrl-C stops it and returns what was found so far (`interrupted` set)."""
        try:
            self._run()
        except KeyboardInterrupt:
            self.result.interrupted = True
        return self.result

    def _run(self) -> None:
        result = self.result
        types = _QUANTIZED if self.low == "INT8" else None
        layers = [name for name in float_layers(self.model, types) if name not in self.options.layer_precisions]
        if self.direction == "reverse":
            layers.reverse()
        result.candidates = len(layers)
        fp16_fails = self._fails(layers, layers, f"every layer in {self.low}")
        self._announce()
        result.fp16_verdict = self.last[1]
        if not fp16_fails:
            if self.strict:
                refuse_passing_original(result.fp16_verdict, f"the {self.low} engine")
            return
        all_fp32_fails = self._fails([], layers, "every layer in FP32")
        self._announce()
        if self.strict:
            refuse_same_failure(result.fp16_verdict, self.last[1], "the engine with every layer in FP32")
        if all_fp32_fails:
            result.unexplained = (f"the engine fails even with every layer in FP32, so {self.low} is not the cause "
                                  "(check the tolerances)")
            return
        search = CulpritSearch(layers, lambda active: self._fails(active, layers, f"{len(active)} of "
                                                                  f"{len(layers)} layers in {self.low}"),
                               mode=self.mode, on_step=self._announce)
        result.fp32_layers = search.culprits  # the same list, so an interruption keeps what was found
        search.run()

    def _fails(self, active: list[str], layers: list[str], description: str) -> bool:
        pinned = [name for name in layers if name not in set(active)]
        precisions = {**self.options.layer_precisions, **{name: "fp32" for name in pinned}}
        options = replace(self.options, layer_precisions=precisions)
        verdict = self.journal.get(sorted(pinned)) if self.journal is not None else None
        if verdict is not None:
            description += " (verdict from the --resume journal)"
        else:
            candidate = build_candidate(self.model, options, self.logger, TacticRecorder(), self.result.builds + 1,
                                        description)
            verdict = self.judge(candidate)
            if self.journal is not None:
                self.journal.record(sorted(pinned), verdict)
        self.result.builds += 1
        self.last = (description, verdict)
        best = self.result.best_passing
        if verdict.passed and (best is None or len(pinned) < len(best)):
            self.result.best_passing = pinned
        return not verdict.passed

    def _announce(self, step: Step | None = None) -> None:
        description, verdict = self.last
        builds = self.result.builds
        bound = "" if step is None else (f" of <= {builds + step.bound - step.index} (about "
                                         f"{builds + step.expected - step.index} if no other culprit)")
        total = builds + step.bound - step.index if step is not None else None
        self.progress(f"build {builds}{bound}: {description} -> {'good' if verdict.passed else 'bad'} "
                      f"({verdict.summary})", done=builds, total=total)
