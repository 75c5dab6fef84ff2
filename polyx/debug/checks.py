"""How a debug search decides whether a candidate (engine, tactic replay, model) is good or bad.

`CommandCheck` runs the user's `--check "CMD"`: `{model}`, `{engine}` and `{tactics}` in CMD are replaced by the
candidate's file paths (shell-quoted), the command runs in a shell, and exit code 0 means good. `ReferenceCheck`
runs the engine on seeded (or loaded) inputs and compares its outputs with a reference: onnxruntime's outputs of
the original model, or golden outputs loaded from a file. `SessionModelCheck` judges a whole candidate model the
way `polyx run --engine --onnxrt` would (the built-in check of `debug reduce`).
"""
from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

import engine as trt
from engine.onnx_file import load_onnx_file

from ..build import BuildOptions, build_engine
from ..compare import Comparator, Tolerances
from ..data.files import load_tensors
from ..data.loader import DataLoader
from ..errors import PolyxError
from ..onnx_model import graph_inputs
from ..run_session import RunOptions, run_session
from ..runners import EngineRunner, OnnxrtRunner
from ..tactic_replay import TacticRecorder, save_replay

PLACEHOLDERS = ("{model}", "{engine}", "{tactics}")
COMMAND_NOT_FOUND = 127  # the shell's exit code
Feeds = dict[str, np.ndarray]


@dataclass
class Verdict:
    passed: bool
    summary: str


@dataclass
class Artifacts:
    """The files of one candidate; None where this kind of candidate has no such file (a CMD using that
    placeholder is then an error)."""

    model: Path | None = None
    engine: Path | None = None
    tactics: Path | None = None


@dataclass
class CommandCheck:
    command: str
    show_output: bool = False

    def __post_init__(self) -> None:
        if not self.command.strip():
            raise PolyxError("--check: the command is empty")

    def uses(self, placeholder: str) -> bool:
        return placeholder in self.command

    def judge(self, artifacts: Artifacts) -> Verdict:
        command = self.command
        for placeholder, path in (("{model}", artifacts.model), ("{engine}", artifacts.engine),
                                  ("{tactics}", artifacts.tactics)):
            if placeholder in command:
                if path is None:
                    usable = [p for p in PLACEHOLDERS if getattr(artifacts, p[1:-1]) is not None]
                    raise PolyxError(f"--check: {placeholder} names no file in this command (usable here: "
                                     f"{', '.join(usable)})")
                command = command.replace(placeholder, shlex.quote(os.fspath(path)))
        completed = subprocess.run(command, shell=True, capture_output=not self.show_output, text=True)
        last_line = (completed.stderr or completed.stdout or "").strip().splitlines()[-1:]
        if completed.returncode == COMMAND_NOT_FOUND:
            raise PolyxError(f"--check: the shell could not find the command "
                             f"({last_line[0] if last_line else command})")
        if completed.returncode == 0:
            return Verdict(True, "check exited 0")
        return Verdict(False, f"check exited {completed.returncode}" + (f": {last_line[0][:200]}" if last_line else ""))


@dataclass
class ReferenceCheck:
    """Fixed inputs and reference outputs, computed once; each candidate engine is compared with them."""

    feeds: list[Feeds]
    reference: list[dict[str, np.ndarray]]
    reference_name: str
    tolerances: Tolerances = field(default_factory=Tolerances)

    @classmethod
    def create(cls, model_path: Path, build: BuildOptions, tolerances: Tolerances, seed: int = 1,
               val_ranges: dict[str, tuple[float, float]] | None = None, load_inputs: Path | None = None,
               load_outputs: Path | None = None) -> ReferenceCheck:
        """Inputs: loaded, or seeded like `polyx run` (same seed, same inputs); reference: loaded, or onnxruntime."""
        model = load_onnx_file(model_path)
        if load_inputs is not None:
            feeds = load_tensors(load_inputs)
            if not feeds:
                raise PolyxError(f"{load_inputs}: holds no iterations")
        else:
            loader = DataLoader(graph_inputs(model), seed=seed, val_ranges=val_ranges, shapes=build.data_shapes())
            feeds = list(loader)
        if load_outputs is not None:
            reference = load_tensors(load_outputs)
            if len(reference) != len(feeds):
                raise PolyxError(f"{load_outputs}: holds {len(reference)} iteration(s) of outputs, the inputs have "
                                 f"{len(feeds)}")
            name = f"golden ({load_outputs.name})"
        else:
            with OnnxrtRunner(model) as runner:
                reference = [runner.infer(iteration) for iteration in feeds]
            name = "onnxrt"
        outputs = {o.name for o in model.graph.output}
        reference = [{k: v for k, v in iteration.items() if k in outputs} or iteration for iteration in reference]
        return cls(feeds, reference, name, tolerances)

    def build_options(self, build: BuildOptions) -> BuildOptions:
        """Inputs the build options leave unshaped get the shape of the (loaded) data, so the engine fits them."""
        named = set(build.input_shapes) | set(build.min_shapes)
        shapes = {name: tuple(array.shape) for name, array in self.feeds[0].items() if name not in named}
        return replace(build, input_shapes={**build.input_shapes, **shapes})

    def judge_engine(self, engine: trt.Engine) -> Verdict:
        comparator = Comparator(self.tolerances)
        failures, compared = [], 0
        with EngineRunner(engine) as runner:
            for index, (iteration, expected) in enumerate(zip(self.feeds, self.reference)):
                actual = runner.infer(iteration)
                names = [name for name in expected if name in actual]
                if not names:
                    raise PolyxError(f"no tensor to compare: {self.reference_name} holds {sorted(expected)[:5]}, "
                                     f"the engine produced {sorted(actual)[:5]}")
                for result in comparator.compare(expected, actual, names, index):
                    compared += 1
                    if not result.passed:
                        failures.append(result)
        if not failures:
            return Verdict(True, f"{compared} output(s) match {self.reference_name}")
        worst = max(failures, key=lambda r: r.max_absolute)
        detail = worst.problem or f"max abs diff {worst.max_absolute:.3g}, {worst.mismatches} of {worst.size} " \
                                  "elements out of tolerance"
        return Verdict(False, f"{len(failures)} of {compared} output(s) differ from {self.reference_name} "
                              f"('{worst.name}': {detail})")


@dataclass
class Candidate:
    """One build to judge: the engine (for a ReferenceCheck) and what a command's placeholders name."""

    engine: trt.Engine
    plan: bytes
    replay: dict
    model: Path


def build_candidate(model: Path, options: BuildOptions, logger: trt.Logger, recorder: TacticRecorder,
                    attempt: int, description: str) -> Candidate:
    """Build one candidate engine with `recorder` as the algorithm selector; a failed build is a PolyxError naming
    the attempt, since every debug search expects each of its builds to succeed."""
    try:
        engine, plan, _ = build_engine(model, replace(options, algorithm_selector=recorder), logger)
    except trt.EngineError as exc:
        raise PolyxError(f"build {attempt} ({description}) failed: {exc}") from exc
    return Candidate(engine, plan, recorder.replay, model)


class EngineJudge:
    """Judges candidate builds with a CommandCheck or a ReferenceCheck; a command gets the files it names, written
    into `workdir` (a candidate's files are replaced by the next candidate's)."""

    def __init__(self, check: CommandCheck | ReferenceCheck, workdir: Path):
        self.check = check
        self.engine_path = Path(workdir) / "candidate.engine"
        self.tactics_path = Path(workdir) / "candidate_tactics.json"

    def __call__(self, candidate: Candidate) -> Verdict:
        if isinstance(self.check, ReferenceCheck):
            return self.check.judge_engine(candidate.engine)
        if self.check.uses("{engine}"):
            self.engine_path.write_bytes(candidate.plan)
        if self.check.uses("{tactics}"):
            save_replay(self.tactics_path, candidate.replay)
        return self.check.judge(Artifacts(model=candidate.model, engine=self.engine_path, tactics=self.tactics_path))


@dataclass
class SessionModelCheck:
    """The built-in check of `debug reduce --engine --onnxrt`: a candidate model fails when the engine's outputs
    differ from onnxruntime's (as `polyx run --engine --onnxrt` would say). A candidate that cannot run (parse,
    build or onnxruntime error) cannot be judged: None."""

    build: BuildOptions
    tolerances: Tolerances = field(default_factory=Tolerances)
    seed: int = 1
    val_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    def fails(self, model: onnx.ModelProto, path: Path) -> bool | None:
        inputs = set(graph_inputs(model))
        nodes = {node.name for node in model.graph.node}
        build = replace(self.build, **{key: {k: v for k, v in getattr(self.build, key).items() if k in inputs}
                                       for key in ("input_shapes", "min_shapes", "opt_shapes", "max_shapes")},
                        layer_precisions={k: v for k, v in self.build.layer_precisions.items() if k in nodes},
                        save_tactics=None, timing_cache=None)
        options = RunOptions(model=Path(path), use_engine=True, use_onnxrt=True, build=build, seed=self.seed,
                             val_ranges={k: v for k, v in self.val_ranges.items() if k == "" or k in inputs},
                             tolerances=self.tolerances)
        try:
            return not run_session(options, logger=trt.Logger(trt.Logger.ERROR)).passed
        except (PolyxError, trt.EngineError):
            return None
