"""How a debug search decides whether a candidate (engine, tactic replay, model) is good or bad.

`CommandCheck` runs the user's `--check "CMD"`: `{model}`, `{engine}` and `{tactics}` in CMD are replaced by the
candidate's file paths (shell-quoted), the command runs in a shell, and exit code 0 means good. `ReferenceCheck`
runs the engine on seeded (or loaded) inputs and compares its outputs with a reference: onnxruntime's outputs of
the original model, or golden outputs loaded from a file. `SessionModelCheck` judges a whole candidate model the
way `polyx run --engine --onnxrt` would (the built-in check of `debug reduce`).
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

import engine as trt
from engine.onnx_file import load_onnx_file

from ..build import BuildOptions, build_engine
from ..compare import Comparator, Tolerances
from ..data.files import load_tensors, write_file
from ..data.loader import DataLoader
from ..errors import PolyxError
from ..onnx_model import graph_inputs
from ..run_session import RunOptions, run_session
from ..runners import EngineRunner, OnnxrtRunner
from ..tactic_replay import TacticRecorder, save_replay

PLACEHOLDERS = ("{model}", "{engine}", "{tactics}", "{inputs}")
# Each placeholder may instead be read from this environment variable, which every check command gets
# (Polygraphy passes fixed file names; a variable works in scripts that cannot take arguments).
PLACEHOLDER_VARIABLES = {"{model}": "POLYX_DEBUG_MODEL", "{engine}": "POLYX_DEBUG_ENGINE",
                         "{tactics}": "POLYX_DEBUG_TACTICS", "{inputs}": "POLYX_DEBUG_INPUTS"}
USAGE_ERROR = 2           # a usage error of the command (polyx, argparse, most tools): says nothing of the candidate
CANNOT_EXECUTE = 126      # the shell found the command but could not run it
COMMAND_NOT_FOUND = 127   # the shell could not find the command
NEVER_FAILS = (USAGE_ERROR, CANNOT_EXECUTE, COMMAND_NOT_FOUND)
Feeds = dict[str, np.ndarray]


@dataclass
class Verdict:
    passed: bool
    summary: str
    # (exit code, first error line) of a command check; two runs with the same signature failed the same way
    signature: tuple[int, str] | None = None
    unusable: bool = False   # the check could not judge the candidate (exit code 2): neither good nor bad


@dataclass
class Artifacts:
    """The files of one candidate; None where this kind of candidate has no such file (a CMD using that
    placeholder is then an error)."""

    model: Path | None = None
    engine: Path | None = None
    tactics: Path | None = None
    inputs: Path | None = None      # debug reduce: the candidate's input values from the original model (.npz)


def _first_error_line(stdout: str, stderr: str) -> str:
    """The first non-empty line of stderr, else of stdout: what a failing tool usually says first."""
    for text in (stderr, stdout):
        for line in (text or "").splitlines():
            if line.strip():
                return line.strip()[:200]
    return ""


@dataclass
class CommandCheck:
    """The user's `--check CMD` with Polygraphy's controls: `fail_codes` (only these exit codes fail; any other
    passes), `ignore_fail_codes` (these exit codes pass), `fail_regex` (a non-passing exit code fails only when
    one of these patterns matches stdout or stderr). Exit codes 2, 126 and 127 never fail: 2 is a usage error
    (the candidate is not judged), 126/127 mean the shell could not run the command (an error)."""

    command: str
    show_output: bool = False
    fail_codes: list[int] = field(default_factory=list)
    ignore_fail_codes: list[int] = field(default_factory=list)
    fail_regex: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.command.strip():
            raise PolyxError("--check: the command is empty")
        for code in (*self.fail_codes, *self.ignore_fail_codes):
            if code in NEVER_FAILS:
                raise PolyxError(f"--fail-code/--ignore-fail-code {code}: exit codes 2 (usage error) and 126/127 "
                                 "(the shell could not run the command) never count as failures")
            if not 0 < code < 256:
                raise PolyxError(f"--fail-code/--ignore-fail-code {code}: an exit code is 1..255")
        try:
            self.patterns = [re.compile(pattern) for pattern in self.fail_regex]
        except re.error as exc:
            raise PolyxError(f"--fail-regex: {exc}") from None

    def uses(self, placeholder: str) -> bool:
        return placeholder in self.command or PLACEHOLDER_VARIABLES[placeholder] in self.command

    def require(self, placeholders: tuple[str, ...], why: str) -> None:
        """Refuse (before anything runs) a command that names none of `placeholders`: it would judge every
        candidate the same way."""
        if not any(self.uses(p) for p in placeholders):
            names = " or ".join(placeholders)
            variables = " or ".join(f"${PLACEHOLDER_VARIABLES[p]}" for p in placeholders)
            raise PolyxError(f"--check \"{self.command}\" names no candidate file: put {names} where the file goes "
                             f"(or read {variables}); {why}")

    def judge(self, artifacts: Artifacts) -> Verdict:
        command, environment = self.command, dict(os.environ)
        for placeholder, path in (("{model}", artifacts.model), ("{engine}", artifacts.engine),
                                  ("{tactics}", artifacts.tactics), ("{inputs}", artifacts.inputs)):
            if self.uses(placeholder) and path is None:
                usable = [p for p in PLACEHOLDERS if getattr(artifacts, p[1:-1]) is not None]
                raise PolyxError(f"--check: {placeholder} names no file in this command (usable here: "
                                 f"{', '.join(usable)})")
            if path is not None:
                command = command.replace(placeholder, shlex.quote(os.fspath(path)))
                environment[PLACEHOLDER_VARIABLES[placeholder]] = os.fspath(path)
        capture = not self.show_output or bool(self.patterns)
        completed = subprocess.run(command, shell=True, capture_output=capture, text=True, env=environment,
                                   errors="replace")
        stdout, stderr = completed.stdout or "", completed.stderr or ""
        if capture and self.show_output:
            sys.stdout.write(stdout)
            sys.stderr.write(stderr)
        code, first = completed.returncode, _first_error_line(stdout, stderr)
        if code in (CANNOT_EXECUTE, COMMAND_NOT_FOUND):
            raise PolyxError(f"--check: the shell could not {'find' if code == COMMAND_NOT_FOUND else 'run'} the "
                             f"command (exit {code}: {first or command})")
        detail = f": {first}" if first else ""
        if code == USAGE_ERROR:
            return Verdict(False, f"check exited 2 (a usage error, not a failure){detail}", (code, first), True)
        if self._fails(code, stdout + "\n" + stderr):
            return Verdict(False, f"check exited {code}{detail}", (code, first))
        why = " (ignored by --ignore-fail-code)" if code in self.ignore_fail_codes else \
            " (not a --fail-code)" if code and self.fail_codes else \
            " (no --fail-regex matched)" if code else ""
        return Verdict(True, f"check exited {code}{why}", (code, first))

    def _fails(self, code: int, output: str) -> bool:
        if code in self.ignore_fail_codes:
            return False
        failed = code in self.fail_codes if self.fail_codes else code != 0
        if failed and self.patterns:
            return any(pattern.search(output) for pattern in self.patterns)
        return failed


def fails_the_same_way(first: Verdict, second: Verdict) -> bool:
    """Whether two failing command-check runs failed identically (same exit code and first error line): the check
    then does not seem to look at the candidate."""
    return (not first.passed and not second.passed and first.signature is not None
            and first.signature == second.signature)


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

    def __init__(self, check: CommandCheck | ReferenceCheck, workdir: Path, save_engine: Path | None = None):
        self.check = check
        self.engine_path = Path(workdir) / "candidate.engine"
        self.tactics_path = Path(workdir) / "candidate_tactics.json"
        self.save_engine = save_engine  # --save-engine: every candidate's plan, before it is judged

    @property
    def is_command(self) -> bool:
        """A user's command, which may not look at the candidate at all (the built-in comparison always does)."""
        return isinstance(self.check, CommandCheck)

    def __call__(self, candidate: Candidate) -> Verdict:
        if self.save_engine is not None:
            write_file(self.save_engine, candidate.plan)
        if isinstance(self.check, ReferenceCheck):
            return self.check.judge_engine(candidate.engine)
        if self.check.uses("{engine}"):
            self.engine_path.write_bytes(candidate.plan)
        if self.check.uses("{tactics}"):
            save_replay(self.tactics_path, candidate.replay)
        verdict = self.check.judge(Artifacts(model=candidate.model, engine=self.engine_path,
                                             tactics=self.tactics_path))
        if verdict.unusable:
            raise PolyxError(f"--check could not judge a candidate engine: {verdict.summary}")
        return verdict


def refuse_passing_original(verdict: Verdict, what: str) -> None:
    """A command check that passes on the original does not reproduce the failure: nothing to search."""
    raise PolyxError(f"the check passes on {what} ({verdict.summary}), so it does not reproduce the failure and "
                     "there is nothing to search")


def refuse_same_failure(original: Verdict, good: Verdict, good_description: str, note: str = "") -> None:
    """Stop when the trivially good candidate fails exactly as the original: the check ignores the candidate (or,
    as `note` may say, what it looks at is the same in both)."""
    if fails_the_same_way(original, good):
        code, line = original.signature
        raise PolyxError(f"the check fails the same way on the original and on {good_description} (exit {code}"
                         + (f": {line}" if line else "") + "), so it does not depend on the candidate and no search "
                         "can explain it; check the command and its placeholders" + (f". Note: {note}" if note else ""))


@dataclass
class SessionModelCheck:
    """The built-in check of `debug reduce --engine --onnxrt`: a candidate model fails when the engine's outputs
    differ from onnxruntime's (as `polyx run --engine --onnxrt` would say). A candidate that cannot run (parse,
    build or onnxruntime error) cannot be judged: None."""

    build: BuildOptions
    tolerances: Tolerances = field(default_factory=Tolerances)
    seed: int = 1
    val_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    inputs: Path | None = None   # the candidate's input values (written by the reducer before each check)
    save_engine: Path | None = None  # --save-engine: each candidate model's engine, before it is judged

    def fails(self, model: onnx.ModelProto, path: Path) -> bool | None:
        inputs = set(graph_inputs(model))
        nodes = {node.name for node in model.graph.node}
        build = replace(self.build, **{key: {k: v for k, v in getattr(self.build, key).items() if k in inputs}
                                       for key in ("input_shapes", "min_shapes", "opt_shapes", "max_shapes")},
                        layer_precisions={k: v for k, v in self.build.layer_precisions.items() if k in nodes},
                        save_tactics=None, timing_cache=None)
        options = RunOptions(model=Path(path), use_engine=True, use_onnxrt=True, build=build, seed=self.seed,
                             val_ranges={k: v for k, v in self.val_ranges.items() if k == "" or k in inputs},
                             tolerances=self.tolerances, save_engine=self.save_engine,
                             load_inputs=self.inputs if self.inputs is not None and self.inputs.is_file() else None)
        try:
            return not run_session(options, logger=trt.Logger(trt.Logger.ERROR)).passed
        except (PolyxError, trt.EngineError):
            return None
