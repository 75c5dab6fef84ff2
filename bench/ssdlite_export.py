"""Export torchvision's SSDlite (ssdlite320_mobilenet_v3_large, random weights) to ONNX and check the engine on it.

A detection model whose post-processing is full of data-dependent shapes: per class, NonZero over the score
threshold, TopK, then one NonMaxSuppression and the final TopK of the detections. Nothing is downloaded
(`weights=None, weights_backbone=None`). Needs torch and torchvision (the GPU machine has them; CI does not, so
this is a script, not a test):

    PYTHONPATH=$PWD python bench/ssdlite_export.py --onnx $OUT/ssdlite.onnx              # export, then check on CPU
    PYTHONPATH=$PWD python bench/ssdlite_export.py --onnx $OUT/ssdlite.onnx --device gpu --skip-export

The check parses and builds the model with the engine, runs it and onnxruntime on the same seeded image, and
prints per output the shapes and the largest differences. Random weights make many low, close scores, so a
detection's rank can swap with a near-tie between the two runtimes; the script reports how many selected boxes
agree as well as the raw differences.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def export(path: Path, size: int, opset: int) -> None:
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()
    image = torch.rand(3, size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(model, ([image],), str(path), opset_version=opset, input_names=["images"],
                          output_names=["boxes", "scores", "labels"], dynamo=False)


def inline_else_branches(model):
    """Replace each If by its else branch. torchvision's batched_nms exports one If ("no boxes: return an empty
    keep list, else run NMS"); this script was written before the engine took If and still checks the else branch,
    which is what both runtimes compute whenever some box passes the score threshold (the script checks that it
    does). The engine runs the export with its If too (bench/real_exports.py)."""
    import onnx

    nodes = []
    for node in model.graph.node:
        if node.op_type != "If":
            nodes.append(node)
            continue
        branch = next(a.g for a in node.attribute if a.name == "else_branch")
        renames = {o.name: final for o, final in zip(branch.output, node.output)}
        for inner in branch.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(inner)
            copy.output[:] = [renames.get(o, o) for o in inner.output]
            nodes.append(copy)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def check(path: Path, size: int, device: str, opt_level: int, if_free: Path | None = None) -> int:
    import onnx
    import onnxruntime as ort

    import engine as trt
    from engine.conformance.harness import parse_onnx

    model = onnx.load(str(path))
    if any(node.op_type == "If" for node in model.graph.node):
        model = inline_else_branches(model)
        print("If nodes replaced by their else branch (see inline_else_branches)")
        if if_free is not None:
            onnx.save(model, str(if_free))
            print(f"wrote {if_free} (for `polyx run {if_free} --engine --onnxrt`)")
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    print(f"{path}: {len(model.graph.node)} nodes; NonZero {counts.get('NonZero', 0)}, NonMaxSuppression "
          f"{counts.get('NonMaxSuppression', 0)}, TopK {counts.get('TopK', 0)}")
    declared = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    shape = tuple(declared) if declared and all(d > 0 for d in declared) else (3, size, size)
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    input_name = model.graph.input[0].name
    feeds = {input_name: image}

    start = time.perf_counter()
    network = parse_onnx(model)
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    config = builder.create_builder_config()
    config.builder_optimization_level = opt_level
    config.device = device
    plan = builder.build_serialized_network(network, config)
    engine = trt.Runtime().deserialize_cuda_engine(plan)
    print(f"parsed and built in {time.perf_counter() - start:.1f} s: {engine.num_layers} layers, plan {len(plan):,} "
          f"bytes; outputs {[(engine.get_tensor_name(i), engine.get_tensor_shape(engine.get_tensor_name(i))) for i in range(1, engine.num_io_tensors)]}")  # noqa: E501
    context = engine.create_execution_context()
    start = time.perf_counter()
    ours = context.execute(feeds)
    ours_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    context.execute(feeds)  # the same sizes again: every stage comes from the context's cache
    again_ms = (time.perf_counter() - start) * 1e3
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    start = time.perf_counter()
    theirs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    ort_ms = (time.perf_counter() - start) * 1e3
    print(f"engine run {ours_ms:.0f} ms (first run), {again_ms:.0f} ms (second run); onnxruntime {ort_ms:.0f} ms")
    failures = 0
    for name, want in theirs.items():
        got = np.asarray(ours[name])
        if got.shape != want.shape:
            print(f"  {name}: shape {got.shape} vs onnxruntime {want.shape}  MISMATCH")
            failures += 1
            continue
        if want.size == 0:
            print(f"  {name}: both empty {want.shape}")
            continue
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        print(f"  {name}: shape {got.shape} {got.dtype}; max abs diff {diff.max():.3g}, mean {diff.mean():.3g}, "
              f"exactly equal {np.mean(diff == 0):.1%}")
    if "boxes" in theirs and ours["boxes"].shape == theirs["boxes"].shape and theirs["boxes"].size:
        ours_rows = {tuple(np.round(r, 3)) for r in np.asarray(ours["boxes"])}
        theirs_rows = {tuple(np.round(r, 3)) for r in theirs["boxes"]}
        print(f"  boxes agreeing to 1e-3 (as sets): {len(ours_rows & theirs_rows)} of {len(theirs_rows)}")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, required=True, help="where the export is written (outside the repo)")
    parser.add_argument("--size", type=int, default=320, help="image side (320 for ssdlite320)")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--opt-level", type=int, default=0, help="builder optimization level (0: no timing)")
    parser.add_argument("--skip-export", action="store_true", help="check an existing export")
    parser.add_argument("--write-if-free", type=Path, help="also save the checked model, If nodes inlined")
    args = parser.parse_args()
    if not args.skip_export:
        start = time.perf_counter()
        export(args.onnx, args.size, args.opset)
        print(f"exported {args.onnx} in {time.perf_counter() - start:.1f} s")
    raise SystemExit(1 if check(args.onnx, args.size, args.device, args.opt_level, args.write_if_free) else 0)


if __name__ == "__main__":
    main()
