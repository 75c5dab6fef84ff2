"""`debug build`: rebuild an engine again and again, judge each build, and sort its files into good/ and bad/.

Tactic timing is noisy, so builds at optimization level >= 1 can differ; keeping every build's engine and tactic
replay under `good/` or `bad/` lets `polyx inspect tactics` and `debug tactics --load-tactics` compare them later.
Each iteration writes `polyx_debug.engine` and `polyx_debug_tactics.json` in the artifacts folder (the `{engine}`
and `{tactics}` of a `--check` command), judges them, then moves them, with any extra artifact files the user
named (for example a `--save-tactics` file or something the check writes), to
`good/` or `bad/` as `<name>_iter<N><suffix>`.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import engine as trt

from ..build import BuildOptions, build_engine
from ..data.files import check_writable, write_file
from ..errors import PolyxError
from ..tactic_replay import TacticRecorder, TacticReplayer, load_replay, save_replay
from .checks import Artifacts, CommandCheck, ReferenceCheck, Verdict

ENGINE_NAME = "polyx_debug.engine"
TACTICS_NAME = "polyx_debug_tactics.json"


@dataclass
class BuildIteration:
    index: int
    passed: bool
    summary: str
    files: list[Path] = field(default_factory=list)


@dataclass
class RepeatedBuildResult:
    iterations: list[BuildIteration] = field(default_factory=list)
    missing_artifacts: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def good(self) -> int:
        return sum(1 for it in self.iterations if it.passed)

    @property
    def bad(self) -> int:
        return len(self.iterations) - self.good


def parse_until(value: str) -> str | int:
    """`good`, `bad` or a number of iterations."""
    text = value.strip().lower()
    if text in ("good", "bad"):
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise PolyxError(f"--until '{value}': expected good, bad or a number of builds (>= 1)")


class RepeatedRuns:
    """Run, judge and sort the artifacts of one iteration after another until the goal or the limit."""

    def __init__(self, artifacts_dir: Path, until: str | int = "bad", max_iterations: int = 50,
                 extra_artifacts: list[Path] | None = None, progress: Callable[..., None] | None = None):
        self.folder = Path(artifacts_dir)
        self.until = until
        self.limit = until if isinstance(until, int) else max_iterations
        self.extra = [Path(p) for p in extra_artifacts or []]
        self.progress = progress or (lambda line, done=None, total=None: None)
        self.result = RepeatedBuildResult()

    def _iteration(self, index: int) -> BuildIteration:
        raise NotImplementedError

    def _bound(self) -> str:
        return f"of {self.limit}" if isinstance(self.until, int) else f"of <= {self.limit}"

    def run(self) -> RepeatedBuildResult:
        """Build until the goal is met or the limit is reached; Ctrl-C stops after sorting what was judged."""
        for sub in ("good", "bad"):
            (self.folder / sub).mkdir(exist_ok=True)
        try:
            for index in range(1, self.limit + 1):
                iteration = self._iteration(index)
                self.result.iterations.append(iteration)
                if self.until == ("good" if iteration.passed else "bad"):
                    break
        except KeyboardInterrupt:
            self.result.interrupted = True
        return self.result

    def found(self) -> bool:
        """Whether an `--until good|bad` goal was met (always True for a number of builds)."""
        if isinstance(self.until, int):
            return True
        return any(it.passed == (self.until == "good") for it in self.result.iterations)

    def _sort(self, path: Path, index: int, verdict: Verdict) -> Path | None:
        if not path.is_file():
            if str(path) not in self.result.missing_artifacts:
                self.result.missing_artifacts.append(str(path))
            return None
        target = self.folder / ("good" if verdict.passed else "bad") / f"{path.stem}_iter{index}{path.suffix}"
        check_writable(path)  # moving removes it: never a file this command read (the model, a data file)
        check_writable(target)
        shutil.move(path, target)
        return target


class RepeatedBuilder(RepeatedRuns):
    """`debug build`: each iteration builds the model, writes its plan and tactic replay, and judges them."""

    def __init__(self, model: Path, options: BuildOptions, check: CommandCheck | ReferenceCheck, artifacts_dir: Path,
                 until: str | int = "bad", max_iterations: int = 50, extra_artifacts: list[Path] | None = None,
                 progress: Callable[..., None] | None = None, logger: trt.Logger | None = None,
                 save_engine: Path | None = None):
        super().__init__(artifacts_dir, until, max_iterations, extra_artifacts, progress)
        self.model = Path(model)
        self.save_engine = save_engine  # --save-engine: each build's plan also here, before it is judged
        self.replay = load_replay(options.load_tactics) if options.load_tactics is not None else None
        self.options = replace(options, load_tactics=None)
        self.check = check
        self.logger = logger or trt.Logger(trt.Logger.ERROR)

    def _iteration(self, index: int) -> BuildIteration:
        recorder = TacticRecorder(inner=TacticReplayer(self.replay) if self.replay else None)
        try:
            engine, plan, _ = build_engine(self.model, replace(self.options, algorithm_selector=recorder), self.logger)
        except trt.EngineError as exc:
            raise PolyxError(f"build {index} failed: {exc}") from exc
        engine_path, tactics_path = self.folder / ENGINE_NAME, self.folder / TACTICS_NAME
        write_file(engine_path, plan)
        if self.save_engine is not None:
            write_file(self.save_engine, plan)
        save_replay(tactics_path, recorder.replay)
        if isinstance(self.check, CommandCheck):
            verdict = self.check.judge(Artifacts(model=self.model, engine=engine_path, tactics=tactics_path))
            if verdict.unusable:
                raise PolyxError(f"--check could not judge build {index}: {verdict.summary}")
        else:
            verdict = self.check.judge_engine(engine)
        files = [self._sort(path, index, verdict) for path in [engine_path, tactics_path, *self.extra]]
        self.progress(f"build {index} {self._bound()}: {'good' if verdict.passed else 'bad'} ({verdict.summary})",
                      done=index, total=self.limit)
        return BuildIteration(index, verdict.passed, verdict.summary, [f for f in files if f is not None])


class RepeatedCommand(RepeatedRuns):
    """`debug repeat` (Polygraphy's): each iteration runs the --check command itself (which may build, run or
    download whatever it likes) and sorts the artifact files it leaves."""

    def __init__(self, check: CommandCheck, artifacts_dir: Path, until: str | int = "bad", max_iterations: int = 50,
                 extra_artifacts: list[Path] | None = None, progress: Callable[..., None] | None = None):
        super().__init__(artifacts_dir, until, max_iterations, extra_artifacts, progress)
        self.check = check

    def _iteration(self, index: int) -> BuildIteration:
        verdict = self.check.judge(Artifacts())
        if verdict.unusable:
            raise PolyxError(f"--check could not judge run {index}: {verdict.summary}")
        files = [self._sort(path, index, verdict) for path in self.extra]
        self.progress(f"run {index} {self._bound()}: {'good' if verdict.passed else 'bad'} ({verdict.summary})",
                      done=index, total=self.limit)
        return BuildIteration(index, verdict.passed, verdict.summary, [f for f in files if f is not None])
