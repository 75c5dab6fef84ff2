"""`polyx debug`: tactics, precision, reduce and build — from "the engine is wrong" to what is wrong.

Every command judges candidates the same way: `--check "CMD"` (a shell command; `{model}`, `{engine}`,
`{tactics}` become the candidate's file paths; exit code 0 = good), or else the built-in comparison with
onnxruntime (or with `--load-outputs`). Progress goes to stderr, one line per build or check; Ctrl-C stops a
search and leaves what it found so far on disk (exit code 130).
"""
from __future__ import annotations

import json
import shlex
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

import engine as trt
from engine.onnx_file import load_onnx_file
from surgeon.model_io import check_output_path, save_model

from ..build import BuildOptions
from ..compare.tolerance import DEFAULT_ATOL, DEFAULT_RTOL
from ..data.files import check_outputs_apart, check_writable, load_tensors, write_file
from ..data.loader import DataLoader
from ..debug import checks
from ..debug.checks import Artifacts, CommandCheck, EngineJudge, ReferenceCheck, SessionModelCheck
from ..debug.journal import VerdictJournal, file_digest, journal_for
from ..debug.precision import PrecisionDebugger
from ..debug.reduce import CutPointValues, ModelReducer, identity_model
from ..debug.repeated_build import RepeatedBuilder, RepeatedCommand, RepeatedRuns, parse_until
from ..debug.tactics import TacticDebugger
from ..errors import PolyxError
from ..onnx_model import graph_inputs
from ..tactic_replay import save_replay
from .build_options import MULTI_VALUE_BUILD_OPTIONS, parse_value_ranges, tolerances_from_flags, with_build_options
from .multi_value_options import multi_value_command
from .run_cmd import engine_logger
from .surgeon_errors import surgeon_errors

debug_app = typer.Typer(name="debug", no_args_is_help=True,
                        help="Find what makes an engine wrong: bad tactics, FP16 layers, a minimal failing subgraph, "
                             "flaky builds.")
CHECK = "Check (default: compare with onnxruntime)"
INTERRUPTED = 130


class Mode(str, Enum):
    bisect = "bisect"
    linear = "linear"


class Direction(str, Enum):
    forward = "forward"
    reverse = "reverse"


ModelArgument = Annotated[Path, typer.Argument(help="ONNX model.")]
CheckOption = Annotated[str | None, typer.Option(
    "--check", help="Shell command that judges each candidate: {model}, {engine} and {tactics} are replaced by its "
                    "file paths (also in $POLYX_DEBUG_MODEL, $POLYX_DEBUG_ENGINE, $POLYX_DEBUG_TACTICS); exit code 0 "
                    "= good, other = bad, except 2 (usage error) and 126/127 (not run), never bad.",
    rich_help_panel=CHECK)]
ShowOutput = Annotated[bool, typer.Option("--show-output", help="Let the --check command print to the terminal.",
                                          rich_help_panel=CHECK)]
FailCode = Annotated[list[int] | None, typer.Option(
    "--fail-code", help="Only these exit codes of --check are failures (any other passes); one or more.",
    rich_help_panel=CHECK)]
IgnoreFailCode = Annotated[list[int] | None, typer.Option(
    "--ignore-fail-code", help="These exit codes of --check pass; one or more.", rich_help_panel=CHECK)]
FailRegex = Annotated[list[str] | None, typer.Option(
    "--fail-regex", help="A failing exit code counts only when one of these regular expressions matches the "
                         "command's stdout or stderr (distinguishes kinds of failure); one or more.",
    rich_help_panel=CHECK)]
Resume = Annotated[Path | None, typer.Option(
    "--resume", help="Journal of this search's verdicts (JSON lines), written as it goes; rerunning the same command "
                     "with it continues where an interruption stopped the search.")]
ENGINE_PLACEHOLDERS = ("{engine}", "{tactics}")
ENGINE_WHY = "every candidate is an engine built from the same model"
Seed = Annotated[int, typer.Option("--seed", help="Seed of the generated inputs (as in `polyx run`).",
                                   rich_help_panel=CHECK)]
ValRange = Annotated[list[str] | None, typer.Option(
    "--val-range", help="Value range NAME:\\[lo,hi] or \\[lo,hi] of the generated inputs (repeatable).",
    rich_help_panel=CHECK)]
LoadInputs = Annotated[Path | None, typer.Option("--load-inputs", help="Inputs (.npz/.json) instead of generated ones.",
                                                 rich_help_panel=CHECK)]
LoadOutputs = Annotated[Path | None, typer.Option(
    "--load-outputs", help="Golden outputs (.npz/.json) to compare with instead of onnxruntime.",
    rich_help_panel=CHECK)]
Atol = Annotated[list[str] | None, typer.Option(
    "--atol", help=f"Absolute tolerance, global or NAME:VALUE (default {DEFAULT_ATOL:g}).", rich_help_panel=CHECK)]
Rtol = Annotated[list[str] | None, typer.Option(
    "--rtol", help=f"Relative tolerance, global or NAME:VALUE (default {DEFAULT_RTOL:g}).", rich_help_panel=CHECK)]
SaveEngine = Annotated[Path | None, typer.Option(
    "--save-engine", help="Write each candidate engine's plan here before it is judged (the last one stays), as "
                          "Polygraphy's debug tools do; a --check command may read it from this fixed path.")]
Verbose = Annotated[int, typer.Option("-v", "--verbose", count=True, help="More detail (-v: engine warnings).")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No progress lines.")]
# `debug build` and `debug repeat`: an iteration is a build or a run of the --check command.
Until = Annotated[str, typer.Option("--until", help="good | bad: stop at the first such iteration; N: N "
                                                   "iterations.")]
MaxIterations = Annotated[int, typer.Option("--max-iterations", min=1, help="Most iterations for --until "
                                                                            "good|bad.")]
ArtifactsDir = Annotated[Path, typer.Option(
    "--artifacts-dir", help="Folder for each iteration's files, sorted into good/ and bad/ (created if missing; "
                            "its parent must exist).")]
ArtifactFiles = Annotated[list[str] | None, typer.Option(
    "--artifacts", help="Files to move into good/ or bad/ after each iteration (what the --check command writes, a "
                        "--save-tactics file); one or more.")]


def _user_check(check: str | None, show_output: bool, fail_code: list[int] | None, ignore_fail_code: list[int] | None,
                fail_regex: list[str] | None, placeholders: tuple[str, ...], why: str) -> CommandCheck | None:
    """The --check command with its controls, refused before anything runs when it names no candidate file."""
    if check is None:
        if fail_code or ignore_fail_code or fail_regex or show_output:
            raise PolyxError("--fail-code, --ignore-fail-code, --fail-regex and --show-output apply to a --check "
                             "command")
        return None
    command = CommandCheck(check, show_output, list(fail_code or []), list(ignore_fail_code or []),
                           list(fail_regex or []))
    if placeholders:
        command.require(placeholders, why)
    return command


def _engine_check(model: Path, build_options: BuildOptions, check: CommandCheck | None, seed: int,
                  val_range: list[str] | None, load_inputs: Path | None, load_outputs: Path | None,
                  atol: list[str] | None, rtol: list[str] | None,
                  share_timing_cache: bool = True) -> tuple[CommandCheck | ReferenceCheck, BuildOptions]:
    """The user's command, or the reference comparison; and the build options that fit its inputs. Every build
    of a search shares one in-memory timing cache, so only the first build of a layer times its tactics."""
    if not model.is_file():
        raise PolyxError(f"{model}: no such file")
    if share_timing_cache:
        build_options = replace(build_options, shared_timing_cache=trt.TimingCache())
    if check is not None:
        if load_inputs is not None or load_outputs is not None:
            raise PolyxError("--check judges candidates itself; --load-inputs/--load-outputs belong to the "
                             "built-in comparison")
        return check, build_options
    for path in (load_inputs, load_outputs):
        if path is not None and not path.is_file():
            raise PolyxError(f"{path}: no such file")
    reference = ReferenceCheck.create(model, build_options, tolerances_from_flags(atol, rtol), seed,
                                      parse_value_ranges(val_range), load_inputs, load_outputs)
    return reference, reference.build_options(build_options)


def _journal(resume: Path | None, command: str, model: Path, build_options: BuildOptions | None,
             **settings) -> VerdictJournal | None:
    """The --resume journal, tied to the model's contents and every setting that changes the verdicts."""
    if resume is None:
        return None
    if resume.resolve() == model.resolve():
        raise PolyxError(f"--resume {resume}: that is the model (a command never writes to its input)")
    build = {} if build_options is None else {
        key: value for key, value in vars(build_options).items()
        if key not in ("algorithm_selector", "shared_timing_cache", "save_tactics", "timing_cache")}
    files = {key: file_digest(value) for key, value in settings.items() if isinstance(value, Path) and value.is_file()}
    return journal_for(resume, command, model, {"build": build, **settings, **files})


class DebugProgress:
    """Progress on stderr: one line per build or check; on a terminal also a rich bar, whose total is the bound
    the search states (never exceeded), or unknown ("?") where no bound covers the whole search."""

    def __init__(self, command: str, quiet: bool, console=None):
        self.command, self.quiet = command, quiet
        self.console = console  # a rich Console; None: stderr, with a bar only when it is a terminal
        self.bar = None
        self.task = None

    def __call__(self, line: str, done: int | None = None, total: int | None = None) -> None:
        if self.quiet:
            return
        text = f"[debug {self.command}] {line}"
        if self.console is None and not sys.stderr.isatty():
            typer.echo(text, err=True)
            return
        if self.bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn(f"debug {self.command}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=self.console or Console(stderr=True))
            self.bar.start()
            self.task = self.bar.add_task(self.command, total=None)
        self.bar.console.print(text, markup=False, highlight=False)
        if done is not None:
            self.bar.update(self.task, completed=done, total=total)

    def __enter__(self) -> DebugProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _echo(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


def _stop_if_interrupted(interrupted: bool, what: str) -> None:
    if interrupted:
        typer.echo(f"Interrupted: {what}", err=True)
        raise typer.Exit(INTERRUPTED)


def tactics(
    model: ModelArgument,
    build_options: BuildOptions,
    check: CheckOption = None,
    show_output: ShowOutput = False,
    fail_code: FailCode = None,
    ignore_fail_code: IgnoreFailCode = None,
    fail_regex: FailRegex = None,
    per_layer: Annotated[bool, typer.Option(
        "--per-layer", help="Also find which of the layers that picked a bad tactic fail with it on their own "
                            "(more builds; the replay then avoids the tactic only there).")] = False,
    seed: Seed = 1,
    val_range: ValRange = None,
    load_inputs: LoadInputs = None,
    load_outputs: LoadOutputs = None,
    atol: Atol = None,
    rtol: Rtol = None,
    resume: Resume = None,
    save_engine: SaveEngine = None,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Find the (layer, tactic) choices that make the engine wrong, by bisection through the algorithm selector.

    --save-tactics FILE writes a replay that avoids them, verified by a passing build.

    Exit code 0 when the search explains the failure (or the engine passes), 1 when no tactic choice explains it.
    """
    save = build_options.save_tactics
    _check_save_engine(save_engine, model)
    command = _user_check(check, show_output, fail_code, ignore_fail_code, fail_regex,
                          _engine_placeholders(check, save_engine), ENGINE_WHY)
    judge, options = _engine_check(model, build_options, command, seed, val_range, load_inputs, load_outputs, atol,
                                   rtol)
    journal = _journal(resume, "tactics", model, options, check=check, fail_code=fail_code,
                       ignore_fail_code=ignore_fail_code, fail_regex=fail_regex, per_layer=per_layer, seed=seed,
                       val_range=val_range, load_inputs=load_inputs, load_outputs=load_outputs, atol=atol, rtol=rtol)
    with tempfile.TemporaryDirectory(prefix="polyx_debug_") as workdir, DebugProgress("tactics", quiet) as progress:
        debugger = TacticDebugger(model, options, EngineJudge(judge, Path(workdir), save_engine),
                                   per_layer=per_layer,
                                  progress=progress, logger=engine_logger(verbose, quiet), journal=journal)
        result = debugger.run()
    lines = []
    if result.initial is not None and result.initial.passed:
        lines.append(f"The engine passes ({result.initial.summary}): no bad tactic to find.")
    elif result.initial is not None:
        lines.append(f"The engine fails: {result.initial.summary}")
    for culprit in result.culprits:
        scope = (f"fails on {len(culprit.layers)} of the {culprit.picked_by} layer(s) that picked it"
                 if culprit.narrowed else f"picked by {culprit.picked_by} layer(s)")
        lines.append(f"Bad tactic: {culprit.tactic} (tactic id {culprit.tactic_id} = 0x{culprit.tactic_id:08x}, "
                     f"{culprit.layer_type}), {scope}:")
        lines += [f"  {layer}" for layer in culprit.layers]
    lines += [f"Note: {note}" for note in result.notes]
    if result.unexplained:
        lines.append(f"No bad tactic found: {result.unexplained}.")
    lines.append(f"Builds: {result.builds} ({result.layers} layers used {result.tactics} distinct tactic(s); "
                 f"{result.suspects} layer(s) had a choice of tactics)")
    passed = result.initial is not None and result.initial.passed
    if save is not None and result.good_replay is not None:
        save_replay(save, result.good_replay)
        if passed:
            lines.append(f"Saved the passing build's tactic replay to {save} (use --load-tactics {save})")
        else:
            verified = "verified by a passing build" if not result.interrupted else "the last passing build's"
            lines.append(f"Saved a tactic replay that avoids them to {save} ({verified}; use --load-tactics {save})")
    _echo(lines)
    _stop_if_interrupted(result.interrupted, f"stopped after {result.builds} builds; the bad tactics above were "
                                             "found so far")
    if result.unexplained:
        raise typer.Exit(1)


def precision(
    model: ModelArgument,
    build_options: BuildOptions,
    mode: Annotated[Mode, typer.Option("--mode", help="bisect: about log2(n) + 1 builds per layer found; linear: "
                                                      "one build per layer.", case_sensitive=False)] = Mode.bisect,
    direction: Annotated[Direction, typer.Option(
        "--direction", help="Search from the inputs (forward) or from the outputs (reverse).",
        case_sensitive=False)] = Direction.forward,
    save: Annotated[Path | None, typer.Option(
        "--save", help="Write the layers found as JSON {layer: \"fp32\"} for --layer-precisions-file.")] = None,
    check: CheckOption = None,
    show_output: ShowOutput = False,
    fail_code: FailCode = None,
    ignore_fail_code: IgnoreFailCode = None,
    fail_regex: FailRegex = None,
    seed: Seed = 1,
    val_range: ValRange = None,
    load_inputs: LoadInputs = None,
    load_outputs: LoadOutputs = None,
    atol: Atol = None,
    rtol: Rtol = None,
    resume: Resume = None,
    save_engine: SaveEngine = None,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Find a small set of layers that must run in FP32 for the --fp16 (or --int8) engine to meet tolerance.

    Exit code 0 when such a set was found (or the engine already passes), 1 when even all-FP32 fails.
    """
    if save is not None:
        check_writable(save)
    _check_save_engine(save_engine, model)
    command = _user_check(check, show_output, fail_code, ignore_fail_code, fail_regex,
                          _engine_placeholders(check, save_engine), ENGINE_WHY)
    judge, options = _engine_check(model, build_options, command, seed, val_range, load_inputs, load_outputs, atol,
                                   rtol)
    journal = _journal(resume, "precision", model, options, check=check, fail_code=fail_code,
                       ignore_fail_code=ignore_fail_code, fail_regex=fail_regex, mode=mode.value,
                       direction=direction.value, seed=seed, val_range=val_range, load_inputs=load_inputs,
                       load_outputs=load_outputs, atol=atol, rtol=rtol)
    with tempfile.TemporaryDirectory(prefix="polyx_debug_") as workdir, DebugProgress("precision", quiet) as progress:
        if options.int8 and options.calibration_cache is None:  # calibrate once: later builds read the cache
            options = replace(options, calibration_cache=Path(workdir) / "calibration.cache")
        debugger = PrecisionDebugger(model, options, EngineJudge(judge, Path(workdir), save_engine),
                                     mode=mode.value,
                                     direction=direction.value, progress=progress,
                                     logger=engine_logger(verbose, quiet), journal=journal)
        result = debugger.run()
    lines = []
    found = result.fp32_layers if not result.interrupted else (result.best_passing or [])
    if result.fp16_verdict is not None and result.fp16_verdict.passed:
        lines.append(f"The {debugger.low} engine passes ({result.fp16_verdict.summary}): no layer needs FP32.")
    elif result.unexplained:
        lines.append(f"No FP32 set found: {result.unexplained}.")
    elif found:
        what = "must run in FP32" if not result.interrupted else "in FP32 made the engine pass (search interrupted)"
        lines.append(f"{len(found)} of {result.candidates} float layers {what}:")
        lines += [f"  {layer}" for layer in found]
        lines.append("Suggested build flags: --layer-precisions " +
                     " ".join(shlex.quote(f"{layer}:fp32") for layer in found))
    lines.append(f"Builds: {result.builds}")
    if save is not None and found:
        write_file(save, json.dumps({layer: "fp32" for layer in found}, indent=1))
        lines.append(f"Saved the layer precisions to {save} (use --layer-precisions-file {save})")
    _echo(lines)
    _stop_if_interrupted(result.interrupted, f"stopped after {result.builds} builds")
    if result.unexplained:
        raise typer.Exit(1)


def reduce(
    model: ModelArgument,
    build_options: BuildOptions,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the reduced model (overwritten).")],
    check: CheckOption = None,
    use_engine: Annotated[bool, typer.Option("--engine", help="Built-in check, with --onnxrt: a candidate fails "
                                                              "when the engine's outputs differ from onnxruntime's.",
                                             rich_help_panel=CHECK)] = False,
    use_onnxrt: Annotated[bool, typer.Option("--onnxrt", help="See --engine.", rich_help_panel=CHECK)] = False,
    show_output: ShowOutput = False,
    fail_code: FailCode = None,
    ignore_fail_code: IgnoreFailCode = None,
    fail_regex: FailRegex = None,
    mode: Annotated[Mode, typer.Option("--mode", help="bisect: bisect the outputs, then the inputs, then drop single "
                                                      "nodes (see --refine); linear: only drop single nodes, one "
                                                      "check each.", case_sensitive=False)] = Mode.bisect,
    refine: Annotated[bool, typer.Option("--refine/--no-refine", help="After bisecting, drop single nodes at the "
                                                                      "ends while the model still fails.")] = True,
    reduce_inputs: Annotated[bool, typer.Option("--reduce-inputs/--no-reduce-inputs",
                                                help="Remove nodes from the input side (cut points become the "
                                                     "model's inputs).")] = True,
    reduce_outputs: Annotated[bool, typer.Option("--reduce-outputs/--no-reduce-outputs",
                                                 help="Remove nodes from the output side (keep the original "
                                                      "outputs with --no-reduce-outputs).")] = True,
    min_good: Annotated[Path | None, typer.Option(
        "--min-good", help="Also write the passing candidate closest in size to the reduced model.")] = None,
    seed: Seed = 1,
    val_range: ValRange = None,
    load_inputs: Annotated[Path | None, typer.Option(
        "--load-inputs", help="The real inputs (.npz/.json, first iteration); the original model runs on them "
                              "once to give every cut point its value.", rich_help_panel=CHECK)] = None,
    atol: Atol = None,
    rtol: Rtol = None,
    resume: Resume = None,
    save_engine: SaveEngine = None,
    quiet: Quiet = False,
) -> None:
    """Shrink a failing MODEL to a small subgraph that still fails (bisect, then linear refinement).

    Needs --check "CMD" (its {model} is each candidate) or --engine --onnxrt. A --check command first runs on MODEL
    (it must fail) and on a model that only copies its inputs (it must not fail the same way).

    Every smaller failing model is written to -o at once, so an interruption leaves the smallest one found.
    """
    if check is not None and (use_engine or use_onnxrt):
        raise PolyxError("pass either --check or --engine --onnxrt, not both")
    if check is None and not (use_engine and use_onnxrt):
        raise PolyxError("debug reduce needs a check: --check \"CMD\" (with {model}) or --engine --onnxrt")
    command = _user_check(check, show_output, fail_code, ignore_fail_code, fail_regex, ("{model}",),
                          "every candidate is a different model")
    if save_engine is not None and command is not None:
        raise PolyxError("--save-engine: with --check, debug reduce builds no engine (the command judges each "
                         "candidate model); use it with --engine --onnxrt")
    _check_save_engine(save_engine, model)
    with surgeon_errors():
        check_output_path(output, model)
        if min_good is not None:
            check_output_path(min_good, model)
    if min_good is not None and min_good.resolve() == output.resolve():
        raise PolyxError("--min-good and -o name the same file")
    original = load_onnx_file(model)
    progress = DebugProgress("reduce", quiet)
    ranges = parse_value_ranges(val_range)
    journal = _journal(resume, "reduce", model, build_options if command is None else None, check=check,
                       fail_code=fail_code, ignore_fail_code=ignore_fail_code, fail_regex=fail_regex,
                       mode=mode.value, refine=refine, reduce_inputs=reduce_inputs, reduce_outputs=reduce_outputs,
                       seed=seed, val_range=val_range, load_inputs=load_inputs, atol=atol, rtol=rtol)
    if resume is not None and resume.resolve() == output.resolve():
        raise PolyxError("--resume and -o name the same file")
    cut_values = _cut_point_values(original, build_options, seed, ranges, load_inputs, progress)
    with tempfile.TemporaryDirectory(prefix="polyx_debug_") as workdir, surgeon_errors(), progress:
        inputs_path = Path(workdir) / "candidate_inputs.npz"
        if command is not None:
            def judge(candidate, path):
                verdict = command.judge(Artifacts(model=path, inputs=inputs_path if cut_values else None))
                return None if verdict.unusable else not verdict.passed

            _reduce_baseline(command, model, original, Path(workdir), progress, cut_values, inputs_path)
        else:
            judge = SessionModelCheck(replace(build_options, shared_timing_cache=trt.TimingCache()),
                                      tolerances_from_flags(atol, rtol), seed, ranges, inputs=inputs_path,
                                      save_engine=save_engine).fails
        result = ModelReducer(original, output, judge, Path(workdir), refine=refine, progress=progress,
                              mode=mode.value, reduce_inputs=reduce_inputs, reduce_outputs=reduce_outputs,
                              min_good=min_good, cut_values=cut_values, inputs_path=inputs_path,
                              journal=journal).run()
    if result.written:
        typer.echo(f"Reduced {result.original_nodes} -> {len(result.nodes)} node(s) in {result.checks} checks"
                   + (f" ({result.skipped} candidates could not run)" if result.skipped else "") + ":")
        _echo([f"  {name}" for name in result.nodes])
        typer.echo(f"Saved {output}")
    if result.min_good_nodes is not None:
        typer.echo(f"Saved a passing model of {result.min_good_nodes} node(s) to {min_good}")
    elif min_good is not None and result.written:
        typer.echo(f"No candidate passed, so nothing was written to {min_good}")
    _stop_if_interrupted(result.interrupted, f"stopped after {result.checks} checks; {output} holds the smallest "
                                             "failing model found so far" if result.written else "nothing written")


def _cut_point_values(original, build_options: BuildOptions, seed: int, ranges, load_inputs: Path | None,
                      progress: Callable[[str], None]) -> CutPointValues | None:
    """Every tensor of the original model on the real inputs (loaded, else seeded like `polyx run`); None, said
    so, when onnxruntime cannot run the original (cut points then get generated data)."""
    if load_inputs is not None:
        feeds = load_tensors(load_inputs)
        if not feeds:
            raise PolyxError(f"{load_inputs}: holds no iterations")
        feeds = feeds[0]
    else:
        feeds = next(iter(DataLoader(graph_inputs(original), seed=seed, val_ranges=ranges,
                                     shapes=build_options.data_shapes())))
    try:
        return CutPointValues(original, feeds)
    except PolyxError as exc:
        progress(f"cut points get generated data: onnxruntime could not run the original model ({exc})")
        return None


def _reduce_baseline(command: CommandCheck, model: Path, original, workdir: Path, progress: Callable[[str], None],
                     cut_values: CutPointValues | None, inputs_path: Path) -> None:
    """The check must fail on the original model and must not fail the same way on a trivially good one."""
    if cut_values is not None:
        cut_values.write_inputs(original, inputs_path)
    inputs = inputs_path if cut_values is not None else None
    verdict = command.judge(Artifacts(model=model, inputs=inputs))
    progress(f"baseline: the original model -> {'passes' if verdict.passed else 'fails'} ({verdict.summary})")
    if verdict.unusable:
        raise PolyxError(f"the check cannot judge the original model: {verdict.summary}")
    if verdict.passed:
        checks.refuse_passing_original(verdict, "the original model")
    trivial = workdir / "identity.onnx"
    save_model(identity_model(original), trivial)
    good = command.judge(Artifacts(model=trivial, inputs=inputs))
    progress(f"baseline: a model that copies its inputs to its outputs -> "
             f"{'passes' if good.passed else 'fails'} ({good.summary})")
    checks.refuse_same_failure(verdict, good, "a model that only copies its inputs to its outputs")


def build(
    model: ModelArgument,
    build_options: BuildOptions,
    until: Until = "bad",
    max_iterations: MaxIterations = 50,
    artifacts_dir: ArtifactsDir = Path("polyx_artifacts"),
    artifacts: ArtifactFiles = None,
    check: CheckOption = None,
    show_output: ShowOutput = False,
    fail_code: FailCode = None,
    ignore_fail_code: IgnoreFailCode = None,
    fail_regex: FailRegex = None,
    seed: Seed = 1,
    val_range: ValRange = None,
    load_inputs: LoadInputs = None,
    load_outputs: LoadOutputs = None,
    atol: Atol = None,
    rtol: Rtol = None,
    save_engine: SaveEngine = None,
    verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Rebuild MODEL repeatedly, judge each build and sort its engine and tactic replay into good/ and bad/.

    Exit code 0 when the --until goal was met (always for a number of builds), 1 when it was not.
    """
    goal = parse_until(until)
    _artifacts_folder(artifacts_dir)
    _check_save_engine(save_engine, model)
    # No placeholder is required: each build's files also lie at fixed paths in the artifacts folder.
    command = _user_check(check, show_output, fail_code, ignore_fail_code, fail_regex, (), "")
    # No shared timing cache here: timing noise between builds is what `debug build` looks for.
    judge, options = _engine_check(model, build_options, command, seed, val_range, load_inputs, load_outputs, atol,
                                   rtol, share_timing_cache=False)
    artifacts_dir.mkdir(exist_ok=True)
    with DebugProgress("build", quiet) as progress:
        builder = RepeatedBuilder(model, options, judge, artifacts_dir, goal, max_iterations,
                                  [Path(p) for p in artifacts or []], progress=progress,
                                  logger=engine_logger(verbose, quiet), save_engine=save_engine)
        builder.run()
    _report_iterations(builder, "build")


def _engine_placeholders(check: str | None, save_engine: Path | None) -> tuple[str, ...]:
    """What a --check command must name to see the candidate: {engine} or {tactics}; nothing with --save-engine
    (Polygraphy's way: the command, or a script it runs, reads the engine from that fixed path)."""
    if check is not None and save_engine is not None:
        return ()
    return ENGINE_PLACEHOLDERS


def _check_save_engine(path: Path | None, model: Path) -> None:
    """--save-engine is rewritten by every candidate: it must be writable and must not be the model."""
    if path is not None:
        check_outputs_apart(path, [model])


def _artifacts_folder(artifacts_dir: Path) -> None:
    if not artifacts_dir.parent.is_dir():
        raise PolyxError(f"--artifacts-dir {artifacts_dir}: folder '{artifacts_dir.parent}' does not exist")
    if artifacts_dir.exists() and not artifacts_dir.is_dir():
        raise PolyxError(f"--artifacts-dir {artifacts_dir}: is a file, expected a folder")


def repeat(
    check: Annotated[str, typer.Option("--check", help="Shell command run each iteration; exit code 0 = good, "
                                                       "other = bad (2, 126 and 127 never bad).",
                                       rich_help_panel=CHECK)],
    until: Until = "bad",
    max_iterations: MaxIterations = 50,
    artifacts_dir: ArtifactsDir = Path("polyx_artifacts"),
    artifacts: ArtifactFiles = None,
    show_output: ShowOutput = False,
    fail_code: FailCode = None,
    ignore_fail_code: IgnoreFailCode = None,
    fail_regex: FailRegex = None,
    quiet: Quiet = False,
) -> None:
    """Run a --check command repeatedly and sort the files it writes into good/ and bad/ (Polygraphy's repeat).

    Exit code 0 when the --until goal was met (always for a number of runs), 1 when it was not.
    """
    goal = parse_until(until)
    _artifacts_folder(artifacts_dir)
    command = _user_check(check, show_output, fail_code, ignore_fail_code, fail_regex, (), "")
    artifacts_dir.mkdir(exist_ok=True)
    with DebugProgress("repeat", quiet) as progress:
        runner = RepeatedCommand(command, artifacts_dir, goal, max_iterations, [Path(p) for p in artifacts or []],
                                 progress=progress)
        runner.run()
    _report_iterations(runner, "run")


def _report_iterations(runs: RepeatedRuns, noun: str) -> None:
    """The summary of `debug build` or `debug repeat` (`noun`: what an iteration is); exit code 1 when the --until
    goal was not met, 130 after Ctrl-C."""
    result, folder = runs.result, runs.folder
    lines = [f"{noun.capitalize()}s: {len(result.iterations)} ({result.good} good, {result.bad} bad); artifacts in "
             f"{folder / 'good'} and {folder / 'bad'}"]
    lines += [f"Note: artifact {path} did not exist after a {noun}" for path in result.missing_artifacts]
    if not isinstance(runs.until, int) and not runs.found():
        lines.append(f"No {runs.until} {noun} in {len(result.iterations)} {noun}s")
    _echo(lines)
    _stop_if_interrupted(result.interrupted, f"artifacts of the finished {noun}s are sorted")
    if not runs.found():
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    multi = (*MULTI_VALUE_BUILD_OPTIONS, "--val-range", "--atol", "--rtol")
    fail_controls = ("--fail-code", "--ignore-fail-code", "--fail-regex")
    for name, command, extra in (("tactics", tactics, ()), ("precision", precision, ()), ("reduce", reduce, ()),
                                 ("build", build, ("--artifacts",))):
        debug_app.command(name, cls=multi_value_command(*multi, *fail_controls, *extra))(with_build_options(command))
    debug_app.command("repeat", cls=multi_value_command("--artifacts", *fail_controls))(repeat)
    app.add_typer(debug_app, name="debug")
