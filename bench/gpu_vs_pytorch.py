"""GPU benchmark: the polyx engine vs PyTorch on ResNet-50 and BERT-base (random weights), in one process.

    PYTHONPATH=$PWD python bench/gpu_vs_pytorch.py --json $OUT/gpu_vs_pytorch.json --markdown $OUT/gpu_vs_pytorch.md

Per model: export to ONNX (dynamic batch, and sequence for BERT) into a temporary folder; build the engine on
the GPU in FP32 (TF32 off), TF32 (FP32 with TF32 allowed) and FP16, one static-shape engine per measured batch
(BERT seq 128; tactics are timed for that batch, as `trtexec --shapes` would), or with --shared-profile one engine
whose profile covers batch 1..--max-batch with opt = the largest measured batch; time the engine (plain
enqueue, and replaying a CUDA graph), PyTorch eager (FP32, TF32 with allow_tf32 on for that variant only, FP16
via .half(), ResNet also channels_last) and torch.compile (default mode, static shapes; reported as failed on
an error or timeout).
Per engine: the cold build's seconds (empty timing cache), with --timing-cache a warm rebuild's seconds, the layers
per tactic source, and with --profile-top N the N slowest layers and each layer type's share of a profiled pass.
A time is the median of per-iteration CUDA-event times after warm-up, synchronizing after every iteration
(latency, not pipelined throughput). Every variant's outputs are compared with PyTorch eager FP32 on the same
inputs, in the same run. torch.compile runs last, and only while the time budget (--budget-s) allows.

Only the measuring code needs torch, CuPy and a GPU; argument parsing and the table/Markdown/JSON formatting
import without them (tests/bench/test_gpu_vs_pytorch.py).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime
import json
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.tables import format_cell, markdown_table, text_table  # noqa: E402 - after the path set-up

MODELS = ("resnet50", "bert")
PRECISIONS = ("fp32", "tf32", "fp16")  # tf32: FP32 engine and PyTorch with TF32 tensor-core math allowed
SCHEMA = "polyx-gpu-vs-pytorch/2"
EAGER = "PyTorch eager"
# --channels-last's words -> BuilderConfig.channels_last (this script and gpu_int8.py take the same ones)
CHANNELS_LAST_MODES = {"off": False, "on": True, "auto": "auto"}
COLUMNS = ["model", "batch", "precision", "runner", "median ms", "time / eager", "max abs diff", "max rel diff",
           "status"]


# ----------------------------------------------------------------------------------------------- settings
@dataclass
class Settings:
    models: list[str]
    batches: list[int]
    seq: int
    max_batch: int
    shared_profile: bool
    precisions: list[str]
    compile_precisions: list[str]
    warmup: int
    iterations: int
    max_seconds: float
    opt_level: int
    compile_timeout_s: float
    budget_s: float
    json: Path | None
    markdown: Path | None
    quick: bool
    pointwise_fusion: bool = False
    channels_last: bool | str = False        # BuilderConfig.channels_last: chains in NHWC memory (True, "auto")
    tactic_sources: list[str] | None = None  # TacticSource names the builder may use; None: all
    profile_top: int = 0                     # slowest layers reported per engine; 0: no profiled pass
    profile_runs: int = 5
    timing_cache: Path | None = None         # written by the cold builds, read by a warm rebuild of each engine


def _csv(allowed: tuple[str, ...] | None = None, integers: bool = False) -> Callable[[str], list]:
    def parse(text: str) -> list:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if integers:
            try:
                values = [int(item) for item in items]
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None
            if not values or any(v < 1 for v in values):
                raise argparse.ArgumentTypeError(f"expected positive integers, got '{text}'")
            return values
        unknown = [item for item in items if allowed is not None and item not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown value(s) {', '.join(unknown)} (choose from "
                                             f"{', '.join(allowed)})")
        return items
    return parse


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=_csv(MODELS), default=list(MODELS), help="resnet50,bert")
    parser.add_argument("--batches", type=_csv(integers=True), default=[1, 32], help="e.g. 1,32")
    parser.add_argument("--seq", type=int, default=128, help="BERT sequence length")
    parser.add_argument("--max-batch", type=int, default=32, help="max batch of the --shared-profile engine")
    parser.add_argument("--shared-profile", action="store_true",
                        help="one engine for all batches (profile 1..--max-batch, opt = the largest batch) instead "
                             "of one static-shape engine per batch")
    parser.add_argument("--precisions", type=_csv(PRECISIONS), default=["fp32", "fp16"],
                        help="fp32,tf32,fp16 (default fp32,fp16); tf32 = FP32 with TF32 allowed, engine and PyTorch")
    parser.add_argument("--compile", dest="compile_precisions", type=_csv((*PRECISIONS, "none")), default=None,
                        help="precisions to run torch.compile in (default fp16; none with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up iterations (default 10; 3 with --quick)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="timed iterations at most (default 50; 10 with --quick)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="timed seconds per measurement at most (default 2; 0.5 with --quick)")
    parser.add_argument("--opt-level", type=int, default=None, help="engine builder optimization level "
                                                                   "(default 3; 1 with --quick)")
    parser.add_argument("--pointwise-fusion", action="store_true",
                        help="build with BuilderConfig.pointwise_fusion (elementwise chains as one generated kernel)")
    parser.add_argument("--channels-last", nargs="?", const="on", default="off", choices=("off", "on", "auto"),
                        type=str.lower,
                        help="build with BuilderConfig.channels_last (convolution chains in NHWC memory, "
                             "docs/formats.md): on (also a bare --channels-last), auto (each chain HWC where it "
                             "times faster), off (default)")
    parser.add_argument("--tactic-sources", nargs="*", default=None, metavar="SOURCE",
                        help="tactic sources the builder may use, Polygraphy spelling: cublas jit_convolutions ... "
                             "(case-insensitive, several after one flag; none after the flag: no source). Default: all")
    parser.add_argument("--profile-top", type=int, default=0,
                        help="after timing each engine, profile its layers and report the N slowest (default 0: off)")
    parser.add_argument("--profile-runs", type=int, default=5, help="runs of the profiled pass (default 5)")
    parser.add_argument("--timing-cache", type=Path, default=None, metavar="FILE",
                        help="cold builds write their timing cache here (an existing file is replaced); each engine is "
                             "then rebuilt from it and the warm build's seconds reported")
    parser.add_argument("--compile-timeout-s", type=float, default=180.0, help="per torch.compile variant")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="total seconds; torch.compile variants that would not fit are skipped")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="write the results as a Markdown table")
    parser.add_argument("--quick", action="store_true", help="fewer iterations, opt level 1, no torch.compile")
    args = parser.parse_args(argv)
    if args.seq < 1:
        parser.error(f"--seq must be >= 1, got {args.seq}")
    if max(args.batches) > args.max_batch:
        parser.error(f"--batches {max(args.batches)} is above --max-batch {args.max_batch}")
    if args.opt_level is not None and not 0 <= args.opt_level <= 5:
        parser.error(f"--opt-level must be 0..5, got {args.opt_level}")
    if args.profile_top < 0:
        parser.error(f"--profile-top must be >= 0, got {args.profile_top}")
    if args.profile_runs < 1:
        parser.error(f"--profile-runs must be >= 1, got {args.profile_runs}")
    tactic_sources = None
    if args.tactic_sources is not None:
        from polyx.cli.build_options import parse_tactic_sources
        from polyx.errors import PolyxError

        values = [v for value in args.tactic_sources for v in value.split(",") if v.strip()]
        try:
            tactic_sources = parse_tactic_sources(values)
        except PolyxError as exc:
            parser.error(str(exc))
    for path in (args.json, args.markdown, args.timing_cache):
        if path is not None and not path.parent.is_dir():
            parser.error(f"{path}: directory '{path.parent}' does not exist")
    quick = args.quick
    compile_precisions = args.compile_precisions if args.compile_precisions is not None else \
        ([] if quick else ["fp16"])
    return Settings(
        models=args.models, batches=sorted(set(args.batches)), seq=args.seq, max_batch=args.max_batch,
        shared_profile=args.shared_profile,
        precisions=args.precisions, compile_precisions=[p for p in compile_precisions if p != "none"],
        warmup=args.warmup if args.warmup is not None else (3 if quick else 10),
        iterations=args.iterations if args.iterations is not None else (10 if quick else 50),
        max_seconds=args.max_seconds if args.max_seconds is not None else (0.5 if quick else 2.0),
        opt_level=args.opt_level if args.opt_level is not None else (1 if quick else 3),
        pointwise_fusion=args.pointwise_fusion,
        channels_last=CHANNELS_LAST_MODES[args.channels_last], tactic_sources=tactic_sources,
        profile_top=args.profile_top,
        profile_runs=args.profile_runs, timing_cache=args.timing_cache,
        compile_timeout_s=args.compile_timeout_s, budget_s=args.budget_s, json=args.json, markdown=args.markdown,
        quick=quick)


# ----------------------------------------------------------------------------------------------- results
def row(model: str, batch: int, precision: str, runner: str, status: str = "ok", median_ms: float | None = None,
        samples: int = 0, diffs: tuple[float, float] | None = None) -> dict[str, Any]:
    return {"model": model, "batch": batch, "precision": precision, "runner": runner, "status": status,
            "median_ms": median_ms, "samples": samples,
            "max_abs_diff": None if diffs is None else diffs[0], "max_rel_diff": None if diffs is None else diffs[1],
            "time_vs_eager": None}


def add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """time_vs_eager: median / PyTorch eager's median for the same model, batch and precision (< 1: faster)."""
    eager = {(r["model"], r["batch"], r["precision"]): r["median_ms"] for r in rows
             if r["runner"] == EAGER and r["median_ms"]}
    for r in rows:
        base = eager.get((r["model"], r["batch"], r["precision"]))
        r["time_vs_eager"] = r["median_ms"] / base if base and r["median_ms"] is not None else None
    return rows


def output_diffs(outputs: list[np.ndarray], reference: list[np.ndarray]) -> tuple[float, float]:
    """(max |x - ref|, max over outputs of max |x - ref| / max |ref|), in float64."""
    max_abs, max_rel = 0.0, 0.0
    for out, ref in zip(outputs, reference):
        out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
        if out.shape != ref.shape:
            raise ValueError(f"output shape {out.shape} differs from the reference's {ref.shape}")
        diff = float(np.max(np.abs(out - ref))) if out.size else 0.0
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / scale if scale > 0 else diff)
    return max_abs, max_rel


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["model"], str(r["batch"]), r["precision"], r["runner"], format_cell(r["median_ms"], "ms"),
             format_cell(r["time_vs_eager"], "ratio"), format_cell(r["max_abs_diff"], "diff"),
             format_cell(r["max_rel_diff"], "diff"), r["status"]] for r in rows]


def format_text_table(rows: list[dict[str, Any]]) -> str:
    return text_table(COLUMNS, table_rows(rows))


def format_markdown(document: dict[str, Any]) -> str:
    meta, settings = document["meta"], document["settings"]
    versions = ", ".join(f"{name} {version}" for name, version in meta["versions"].items())
    lines = [
        "# polyx engine vs PyTorch (GPU)", "",
        f"- date: {meta['date']}",
        f"- GPU: {meta['gpu']}",
        f"- versions: {versions}",
        *([f"- **interrupted**: {meta['interrupted']}"] if meta.get("interrupted") else []),
        f"- settings: warm-up {settings['warmup']} iterations, median of up to {settings['iterations']} timed "
        f"iterations (at most {settings['max_seconds']:g} s each measurement; CUDA events, synchronized every "
        f"iteration); fp32 with TF32 off and tf32 with TF32 allowed, in the engine and PyTorch alike; "
        f"cudnn.benchmark on; engine optimization level {settings['opt_level']}"
        + (", pointwise fusion on" if settings.get("pointwise_fusion") else "")
        + (f", channels-last {'auto' if settings.get('channels_last') == 'auto' else 'on'}"
           if settings.get("channels_last") else "")
        + f", tactic sources {_sources_setting(settings.get('tactic_sources'))}, "
        + (f"one profile batch 1..{settings['max_batch']} (opt {settings['opt_batch']})"
           if settings.get("shared_profile") else "one static-shape engine per batch") + ", BERT "
        f"seq {settings['seq']}; torch.compile in {', '.join(settings['compile_precisions']) or 'no precision'}",
        "", *markdown_table(COLUMNS, table_rows(document["rows"])),
        "",
        "time / eager: median time over PyTorch eager's at the same model, batch and precision, measured in the "
        "same run (< 1 is faster). max abs diff / max rel diff: against PyTorch eager FP32 on the same inputs; "
        "rel = max |x - ref| / max |ref| per output.",
    ]
    lines += format_builds_markdown(document["builds"])
    lines += format_profiles_markdown(document.get("profiles", []))
    return "\n".join(lines) + "\n"


def _sources_setting(sources: list[str] | None) -> str:
    if sources is None:
        return "all"
    return ", ".join(name.lower() for name in sources) or "none (kernels of no source only)"


def _md(text: Any) -> str:
    """A Markdown table cell: pipes escaped (layer names may contain them)."""
    return str(text).replace("|", "\\|")


def _by_source_cell(counts: dict[str, int] | None) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items()) if counts else "-"


def _warm_cache_cell(build: dict[str, Any]) -> str:
    if build.get("warm_cache_hits") is None:
        return "-"
    same = {True: "same tactics", False: "OTHER tactics", None: ""}[build.get("warm_same_tactics")]
    return ", ".join(part for part in (f"{build['warm_cache_hits']} hits", f"{build['warm_cache_misses']} misses",
                                       same) if part)


def format_builds_markdown(builds: list[dict[str, Any]]) -> list[str]:
    """One row per engine: cold build seconds (empty timing cache), warm rebuild seconds from --timing-cache and
    its cache hits/misses, device layers and how many of them each tactic source runs."""
    if not builds:
        return []
    lines = ["", "| model | precision | profile | build s | warm build s | warm cache | device layers "
                 "| layers by tactic source | status |", "|---|---|---|---|---|---|---|---|---|"]
    for b in builds:
        warm = b.get("warm_status", "ok")
        warm_cell = format_cell(b.get("warm_seconds"), "ms") if warm == "ok" else _md(warm)
        lines.append(f"| {b['model']} | {b['precision']} | {b.get('profile', '-')} | {format_cell(b['seconds'], 'ms')} "
                     f"| {warm_cell} | {_warm_cache_cell(b)} | {b['device_layers'] or '-'} "
                     f"| {_by_source_cell(b.get('layers_by_source'))} | {_md(b['status'])} |")
    lines += ["", "build s: cold build (parse + build, empty timing cache; process-wide kernel-compile caches may be "
                  "warm from earlier builds of the run). warm build s: the same engine rebuilt from the --timing-cache "
                  "file the cold builds wrote. layers by tactic source: device layers per chosen tactic's source "
                  "(none: kernels of no source)."]
    for b in builds:
        if b.get("channels_last"):
            c = b["channels_last"]
            lines.append(f"- {b['model']} {b['precision']} ({b.get('profile', '-')}): channels-last auto, {c['hwc']} "
                         f"of {c['chains']} convolution chains HWC; chains' layers summed {c['linear_ms']:.3f} ms "
                         f"LINEAR vs {c['hwc_ms']:.3f} ms HWC with their reformats, timed at build")
    return lines


def format_profiles_markdown(profiles: list[dict[str, Any]]) -> list[str]:
    """Per engine variant: the slowest layers by median time and each layer type's share of the summed layer time."""
    if not profiles:
        return []
    lines = ["", "## Per-layer profile", "",
             "A profiled pass after timing: each layer's GPU time (its kernels replayed as a CUDA graph after it ran, "
             "engine/step_execution.py), median over the runs; share = of the summed layer medians, which comes "
             "close to the CUDA-graph latency (launch gaps between layers are not in it)."]
    for p in profiles:
        title = f"### {p['model']} {p['precision']} batch {p['batch']}"
        if p["status"] != "ok":
            lines += ["", f"{title}: {p['status']}"]
            continue
        lines += ["", f"{title}: {p['runs']} profiled runs, {p['total_ms']:.3f} ms summed over {p['layers']} layers",
                  "", "| # | layer | type | tactic | source | median ms | share |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {i} | {_md(t['name'])} | {t['type']} | {_md(t['tactic'] or '-')} | {t['source'] or '-'} "
                  f"| {t['median_ms']:.4f} | {100 * t['share']:.1f}% |" for i, t in enumerate(p["top"], 1)]
        lines += ["", "| layer type | layers | median ms | share |", "|---|---|---|---|"]
        lines += [f"| {t['type']} | {t['layers']} | {t['median_ms']:.4f} | {100 * t['share']:.1f}% |"
                  for t in p["by_type"]]
    return lines


def result_document(meta: dict[str, Any], settings: Settings, rows: list[dict[str, Any]],
                    builds: list[dict[str, Any]], profiles: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"schema": SCHEMA, "meta": meta,
            "settings": {"models": settings.models, "batches": settings.batches, "seq": settings.seq,
                         "max_batch": settings.max_batch, "opt_batch": max(settings.batches),
                         "shared_profile": settings.shared_profile,
                         "precisions": settings.precisions, "compile_precisions": settings.compile_precisions,
                         "warmup": settings.warmup, "iterations": settings.iterations,
                         "max_seconds": settings.max_seconds, "opt_level": settings.opt_level,
                         "pointwise_fusion": settings.pointwise_fusion, "channels_last": settings.channels_last,
                         "tactic_sources": settings.tactic_sources,
                         "profile_top": settings.profile_top, "profile_runs": settings.profile_runs,
                         "timing_cache": None if settings.timing_cache is None else str(settings.timing_cache),
                         "quick": settings.quick},
            "rows": add_ratios(rows), "builds": builds, "profiles": profiles or []}


def write_outputs(document: dict[str, Any], settings: Settings) -> None:
    print(format_text_table(document["rows"]), flush=True)
    if settings.json is not None:
        settings.json.write_text(json.dumps(document, indent=1) + "\n")
    if settings.markdown is not None:
        settings.markdown.write_text(format_markdown(document))


# ----------------------------------------------------------------------------------------------- models
@dataclass
class ModelSpec:
    name: str
    module: Any                                   # FP32, eval mode, on the GPU
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    make_inputs: Callable[[int], list]            # batch -> input tensors on the GPU (same values every call)
    channels_last: bool


def resnet50_spec() -> ModelSpec:
    import torch
    import torchvision

    torch.manual_seed(0)
    module = torchvision.models.resnet50(weights=None).eval().cuda()

    def make_inputs(batch: int) -> list:
        generator = torch.Generator().manual_seed(batch)
        return [torch.randn(batch, 3, 224, 224, generator=generator).cuda()]

    return ModelSpec("resnet50", module, ["input"], ["output"], {"input": {0: "batch"}, "output": {0: "batch"}},
                     make_inputs, channels_last=True)


def bert_spec(seq: int, config: Any = None, device: str = "cuda") -> ModelSpec:
    """BERT-base (`BertConfig()` defaults unless `config`), random weights; inputs input_ids + attention_mask."""
    import torch
    from transformers import BertConfig, BertModel

    class BertOutputs(torch.nn.Module):
        """Keyword call into BertModel, tuple out: what the ONNX exporter and torch.compile handle best."""

        def __init__(self, bert: Any):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> tuple:
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
            return out.last_hidden_state, out.pooler_output

    config = config or BertConfig()
    torch.manual_seed(0)
    module = BertOutputs(BertModel(config)).eval().to(device)

    def make_inputs(batch: int) -> list:
        generator = torch.Generator().manual_seed(batch)
        ids = torch.randint(0, config.vocab_size, (batch, seq), generator=generator)
        return [ids.to(device), torch.ones(batch, seq, dtype=torch.int64, device=device)]

    tokens = {0: "batch", 1: "seq"}
    return ModelSpec("bert", module, ["input_ids", "attention_mask"], ["last_hidden_state", "pooler_output"],
                     {"input_ids": tokens, "attention_mask": tokens, "last_hidden_state": tokens,
                      "pooler_output": {0: "batch"}}, make_inputs, channels_last=False)


def export_onnx(spec: ModelSpec, path: Path) -> None:
    """TorchScript exporter (dynamic_axes, opset 17); the dynamo exporter where the TorchScript one is gone."""
    import torch

    args = tuple(spec.make_inputs(2))
    common = {"input_names": spec.input_names, "output_names": spec.output_names, "dynamic_axes": spec.dynamic_axes}
    try:
        torch.onnx.export(spec.module, args, str(path), opset_version=17, dynamo=False, **common)
    except TypeError:
        torch.onnx.export(spec.module, args, str(path), opset_version=18, dynamo=True, **common)
    spec.module.eval()  # the exporter restores the training flag of the module it was given


# ----------------------------------------------------------------------------------------------- engines
@contextlib.contextmanager
def tf32_allowed(backends: Any, allowed: bool) -> Iterator[None]:
    """PyTorch's TF32 switches (cuBLAS matmuls, cuDNN convolutions) set for one variant and restored afterwards,
    so only the tf32 variants run with TF32; `backends` is `torch.backends`."""
    previous = (backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32)
    backends.cuda.matmul.allow_tf32 = allowed
    backends.cudnn.allow_tf32 = allowed
    try:
        yield
    finally:
        backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32 = previous


def timed_chains(engine: Any) -> dict[str, Any] | None:
    """A channels_last "auto" engine's timed chains (engine/channels_last_choice.py) summed: how many, how many
    were built HWC, their LINEAR and HWC layer times (ms); None for an engine built otherwise."""
    choice = getattr(engine, "meta", {}).get("channels_last")
    if not choice:
        return None
    chains = choice["chains"]
    return {"chains": len(chains), "hwc": sum(chain["hwc"] for chain in chains),
            "linear_ms": sum(chain["linear_ms"] for chain in chains),
            "hwc_ms": sum(chain["hwc_ms"] for chain in chains)}


class EngineBuilds:
    """Builds each engine cold, from an empty timing cache. With a cache file, the cold build's timings are added
    to the file (which ends up holding every build of the run) and the engine is rebuilt from it: the warm build,
    whose seconds, cache hits/misses and whether it chose the same tactics are reported too."""

    def __init__(self, cache_file: Path | None):
        self.cache_file = cache_file
        self.run_cache: Any = None  # engine.TimingCache: every cold build's timings

    def build(self, onnx_path: Path, options: Any) -> tuple[Any, dict[str, Any]]:
        """(cold engine, build record); raises what the cold build raises (a failed warm build is only noted)."""
        import engine as trt
        from polyx.bench import count_layers_by_source
        from polyx.build import build_engine

        cold_cache = trt.TimingCache()
        engine, _, report = build_engine(onnx_path, dataclasses.replace(options, shared_timing_cache=cold_cache))
        rows = engine.layer_info()
        record = {"seconds": report.build_seconds, "device_layers": report.layers_after, "status": "ok",
                  "tactics": {k: dict(v) for k, v in report.tactics_by_layer_type.items()},
                  "layers_by_source": count_layers_by_source(rows)}
        chains = timed_chains(engine)
        if chains is not None:
            record["channels_last"] = chains
        if self.cache_file is not None:
            record.update(self._warm_build(onnx_path, options, cold_cache, [row["tactic_id"] for row in rows]))
        return engine, record

    def _warm_build(self, onnx_path: Path, options: Any, cold_cache: Any, cold_tactics: list[int]) -> dict[str, Any]:
        import engine as trt
        from polyx.build import build_engine
        from polyx.data.files import write_file

        if self.run_cache is None:
            self.run_cache = trt.TimingCache()
        self.run_cache.combine(cold_cache)
        write_file(self.cache_file, self.run_cache.serialize())
        try:
            warm_cache = trt.TimingCache.deserialize(Path(self.cache_file).read_bytes())
            warm, _, report = build_engine(onnx_path, dataclasses.replace(options, shared_timing_cache=warm_cache))
            same = [row["tactic_id"] for row in warm.layer_info()] == cold_tactics
            del warm
        except Exception as exc:  # noqa: BLE001 - the cold engine is still measured
            return {"warm_seconds": None, "warm_status": failure_status(exc)}
        return {"warm_seconds": report.build_seconds, "warm_status": "ok", "warm_cache_hits": warm_cache.hits,
                "warm_cache_misses": warm_cache.misses, "warm_same_tactics": same}


def profile_engine(engine: Any, worker: Any, runs: int, top: int) -> dict[str, Any]:
    """`polyx bench --export-profile`'s profiled pass (`worker.run_once()` `runs` times with the engine's
    IProfiler attached; each layer's GPU time), summarized: the `top` slowest layers and the type shares."""
    from polyx.bench import profile_layers, summarize_profile

    return {"status": "ok", **summarize_profile(profile_layers(engine, worker, runs), top).to_json()}


# ----------------------------------------------------------------------------------------------- measuring
def time_cuda(run: Callable[[], Any], stream: Any, warmup: int, iterations: int, max_seconds: float) -> list[float]:
    """Per-iteration CUDA-event times (ms) on `stream`, after `warmup` runs; stops early after `max_seconds`."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples: list[float] = []
    torch.cuda.synchronize()  # inputs were made on the default stream
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            run()
        stream.synchronize()
        deadline = time.perf_counter() + max_seconds
        for _ in range(iterations):
            start.record(stream)
            run()
            end.record(stream)
            end.synchronize()
            samples.append(start.elapsed_time(end))
            if time.perf_counter() > deadline and len(samples) >= 5:
                break
    return samples


class TorchVariant:
    def __init__(self, module: Any, inputs: list):
        self.module, self.inputs, self.last = module, inputs, None

    def run(self) -> None:
        self.last = self.module(*self.inputs)

    def results(self) -> list[np.ndarray]:
        self.run()
        outs = self.last if isinstance(self.last, (tuple, list)) else [self.last]
        return [o.float().cpu().numpy() for o in outs]


class EngineVariant:
    """One execution context with CuPy views of torch tensors bound once; enqueues on a torch stream."""

    def __init__(self, engine: Any, spec: ModelSpec, inputs: list, stream: Any, cuda_graph: bool):
        import cupy
        import torch

        from polyx.bench.io_tensors import tensor_dtype

        self.context = engine.create_execution_context()
        self.context.use_cuda_graph = cuda_graph
        self.handle = stream.cuda_stream
        self._keep = []
        for name, tensor in zip(spec.input_names, inputs):
            dtype = tensor_dtype(engine, name)
            converted = tensor.to(getattr(torch, dtype.name)).contiguous()
            self._keep.append(converted)
            self.context.set_input_shape(name, tuple(converted.shape))
            self.context.set_tensor_address(name, cupy.asarray(converted))
        self.outputs = {}
        for name in spec.output_names:
            self.outputs[name] = cupy.empty(self.context.get_tensor_shape(name), tensor_dtype(engine, name))
            self.context.set_tensor_address(name, self.outputs[name])
        self.names = spec.output_names

    def run(self) -> None:
        self.context.execute_async_v3(self.handle)

    run_once = run  # what polyx.bench.profile_layers calls

    @property
    def graph_captured(self) -> bool:
        return getattr(self.context, "cuda_graph_captures", 0) > 0

    def results(self) -> list[np.ndarray]:
        import cupy

        self.run()
        cupy.cuda.ExternalStream(self.handle).synchronize()
        return [cupy.asnumpy(self.outputs[name]).astype(np.float32) for name in self.names]


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the main thread after `seconds` (SIGALRM; torch.compile runs in the main thread)."""
    def expire(signum, frame):
        raise TimeoutError(f"did not finish within {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1.0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Interrupted(BaseException):
    """SIGTERM arrived (`timeout` around a device call): a BaseException, so that no per-variant `except Exception`
    swallows it; main() still writes the rows measured so far."""


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    def interrupt(signum, frame):
        raise Interrupted(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def failure_status(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"failed: {type(exc).__name__}: {text}"[:160]


class Benchmark:
    def __init__(self, settings: Settings):
        import torch

        self.settings = settings
        self.started = time.perf_counter()
        self.rows: list[dict[str, Any]] = []
        self.builds: list[dict[str, Any]] = []
        self.profiles: list[dict[str, Any]] = []
        self.engine_builds = EngineBuilds(settings.timing_cache)
        self.stream = torch.cuda.Stream()
        self.references: dict[tuple[str, int], list[np.ndarray]] = {}

    def remaining_s(self) -> float:
        return self.settings.budget_s - (time.perf_counter() - self.started)

    def measure(self, spec: ModelSpec, batch: int, precision: str, runner: str, variant: Any) -> None:
        s = self.settings
        try:
            samples = time_cuda(variant.run, self.stream, s.warmup, s.iterations, s.max_seconds)
            status = "ok"
            if isinstance(variant, EngineVariant) and variant.context.use_cuda_graph and not variant.graph_captured:
                status = "failed: CUDA graph capture (timed with plain enqueue)"
            diffs = output_diffs(variant.results(), self.references[(spec.name, batch)])
            self.rows.append(row(spec.name, batch, precision, runner, status, float(np.median(samples)),
                                 len(samples), diffs))
        except Exception as exc:  # noqa: BLE001 - one failing variant must not lose the others' results
            self.rows.append(row(spec.name, batch, precision, runner, failure_status(exc)))
        print(f"  {spec.name} batch {batch} {precision} {runner}: {self.rows[-1]['status']} "
              f"{format_cell(self.rows[-1]['median_ms'], 'ms')} ms", flush=True)

    def run_core(self, spec: ModelSpec, workdir: Path) -> None:
        """Export, PyTorch eager variants and the engine's, for every batch and precision."""
        import torch

        s = self.settings
        onnx_path = workdir / f"{spec.name}.onnx"
        export_onnx(spec, onnx_path)
        inputs = {batch: spec.make_inputs(batch) for batch in s.batches}
        with torch.no_grad():
            for batch in s.batches:
                self.references[(spec.name, batch)] = TorchVariant(spec.module, inputs[batch]).results()
            for precision in s.precisions:
                module = copy.deepcopy(spec.module).half() if precision == "fp16" else spec.module
                with tf32_allowed(torch.backends, precision == "tf32"):
                    for batch in s.batches:
                        feeds = [t.half() if precision == "fp16" and t.is_floating_point() else t
                                 for t in inputs[batch]]
                        self.measure(spec, batch, precision, EAGER, TorchVariant(module, feeds))
                        if spec.channels_last:
                            layout = copy.deepcopy(module).to(memory_format=torch.channels_last)
                            cl_feeds = [t.contiguous(memory_format=torch.channels_last) for t in feeds]
                            self.measure(spec, batch, precision, f"{EAGER} channels_last",
                                         TorchVariant(layout, cl_feeds))
                            del layout
                del module
                self._measure_engine(spec, onnx_path, precision, inputs)
        onnx_path.unlink(missing_ok=True)

    def _measure_engine(self, spec: ModelSpec, onnx_path: Path, precision: str, inputs: dict[int, list]) -> None:
        """Build (one engine per batch, or one shared-profile engine) and time plain enqueue and CUDA graph."""
        s = self.settings
        if s.shared_profile:
            self._build_and_measure(spec, onnx_path, precision, inputs, 1, max(s.batches), s.max_batch, s.batches)
        else:
            for batch in s.batches:
                self._build_and_measure(spec, onnx_path, precision, inputs, batch, batch, batch, [batch])

    def _build_and_measure(self, spec: ModelSpec, onnx_path: Path, precision: str, inputs: dict[int, list],
                           lo: int, opt: int, hi: int, batches: list[int]) -> None:
        import cupy

        from polyx.build import BuildOptions

        s = self.settings
        shapes = {name: tuple(t.shape[1:]) for name, t in zip(spec.input_names, inputs[opt])}
        options = BuildOptions(min_shapes={n: (lo, *d) for n, d in shapes.items()},
                               opt_shapes={n: (opt, *d) for n, d in shapes.items()},
                               max_shapes={n: (hi, *d) for n, d in shapes.items()},
                               fp16=precision == "fp16", tf32=precision == "tf32", device="gpu",
                               optimization_level=s.opt_level, pointwise_fusion=s.pointwise_fusion,
                               channels_last=s.channels_last, tactic_sources=s.tactic_sources)
        profile = f"batch {lo}..{hi} opt {opt}"
        try:
            engine, record = self.engine_builds.build(onnx_path, options)
        except Exception as exc:  # noqa: BLE001 - reported as a failed build; the other measurements go on
            self.builds.append({"model": spec.name, "precision": precision, "profile": profile, "seconds": None,
                                "device_layers": None, "status": failure_status(exc)})
            for batch in batches:
                for runner in ("polyx", "polyx + CUDA graph"):
                    self.rows.append(row(spec.name, batch, precision, runner, "failed: build"))
            return
        self.builds.append({"model": spec.name, "precision": precision, "profile": profile, **record})
        warm = f", warm {record['warm_seconds']:.1f} s" if record.get("warm_seconds") is not None else ""
        print(f"  built {spec.name} {precision} ({profile}) in {record['seconds']:.1f} s{warm}", flush=True)
        for batch in batches:
            for runner, graph in (("polyx", False), ("polyx + CUDA graph", True)):
                try:
                    variant = EngineVariant(engine, spec, inputs[batch], self.stream, graph)
                except Exception as exc:  # noqa: BLE001
                    self.rows.append(row(spec.name, batch, precision, runner, failure_status(exc)))
                    continue
                self.measure(spec, batch, precision, runner, variant)
                if not graph and s.profile_top:
                    self._profile(engine, spec, batch, precision, profile, variant)
                del variant
        del engine
        cupy.get_default_memory_pool().free_all_blocks()

    def _profile(self, engine: Any, spec: ModelSpec, batch: int, precision: str, profile: str,
                 variant: EngineVariant) -> None:
        where = {"model": spec.name, "precision": precision, "batch": batch, "profile": profile}
        try:
            result = profile_engine(engine, variant, self.settings.profile_runs, self.settings.profile_top)
        except Exception as exc:  # noqa: BLE001 - the timings stand without the profile
            result = {"status": failure_status(exc)}
        self.profiles.append({**where, **result})
        top = result.get("top") or [{}]
        print(f"  profiled {spec.name} batch {batch} {precision}: {result['status']}, slowest "
              f"{top[0].get('name', '-')} ({100 * top[0].get('share', 0):.1f}%)", flush=True)

    def run_compile(self, spec: ModelSpec, batches: list[int]) -> None:
        """torch.compile (default mode, static shapes) per precision and batch, while the budget allows."""
        import torch

        s = self.settings
        for precision in s.compile_precisions:
            module = copy.deepcopy(spec.module).half() if precision == "fp16" else spec.module
            for batch in batches:
                left = self.remaining_s()
                if left < 60:
                    self.rows.append(row(spec.name, batch, precision, "torch.compile", "skipped: time budget"))
                    continue
                feeds = [t.half() if precision == "fp16" and t.is_floating_point() else t
                         for t in spec.make_inputs(batch)]
                with tf32_allowed(torch.backends, precision == "tf32"):  # read when compiling and when running
                    try:
                        with torch.no_grad(), time_limit(min(s.compile_timeout_s, left - 30)):
                            compiled = torch.compile(module, dynamic=False)
                            compiled(*feeds)
                            torch.cuda.synchronize()
                    except Exception as exc:  # noqa: BLE001 - TimeoutError included: report and go on
                        self.rows.append(row(spec.name, batch, precision, "torch.compile", failure_status(exc)))
                    else:
                        with torch.no_grad():
                            self.measure(spec, batch, precision, "torch.compile", TorchVariant(compiled, feeds))
                torch._dynamo.reset()
            del module


def environment() -> dict[str, Any]:
    import cupy
    import onnx
    import onnxruntime
    import torch

    import engine

    versions = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                "cupy": cupy.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                "numpy": np.__version__, "polyx engine": engine.__version__}
    for name in ("torchvision", "transformers"):
        with contextlib.suppress(ImportError):
            versions[name] = __import__(name).__version__
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "gpu": torch.cuda.get_device_name(),
            "versions": versions}


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu_vs_pytorch: no CUDA GPU visible to PyTorch", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    bench = Benchmark(settings)
    interrupted = None
    with stop_on_sigterm():
        try:
            run_all(bench, settings)
        except Interrupted as exc:
            interrupted = f"{exc}: stopped early; only what was measured until then is reported"
            print(f"gpu_vs_pytorch: {interrupted}", file=sys.stderr, flush=True)
    document = result_document(environment(), settings, bench.rows, bench.builds, bench.profiles)
    document["meta"]["total_seconds"] = time.perf_counter() - bench.started
    if interrupted:
        document["meta"]["interrupted"] = interrupted
    write_outputs(document, settings)
    return 0


def run_all(bench: Benchmark, settings: Settings) -> None:
    factories = {"resnet50": resnet50_spec, "bert": lambda: bert_spec(settings.seq)}
    specs = []
    with tempfile.TemporaryDirectory(prefix="polyx-gpu-bench-") as workdir:
        for name in settings.models:
            print(f"{name}: export, eager, engine", flush=True)
            try:
                spec = factories[name]()
                specs.append(spec)
                bench.run_core(spec, Path(workdir))
            except Exception as exc:  # noqa: BLE001 - e.g. a failed export: the next model still runs
                bench.rows.append(row(name, 0, "-", "export", failure_status(exc)))
    # torch.compile takes most of the budget: every model's largest batch first (the issue goals compare batch 32),
    # then the smaller batches, while the budget allows.
    for batch in sorted(settings.batches, reverse=True) if settings.compile_precisions else []:
        for spec in specs:
            print(f"{spec.name} batch {batch}: torch.compile", flush=True)
            bench.run_compile(spec, [batch])


if __name__ == "__main__":
    sys.exit(main())
