import re
import xml.etree.ElementTree as ET

import numpy as np

from polyx.compare import Comparator, GraphNode, Tolerances, analyze_layers
from polyx.report import format_run_result, render_html
from polyx.run_session import RunnerOutputs, RunResult


def _result():
    nodes = [GraphNode("conv<1>", "Conv", ["x"], ["a<b"]), GraphNode("relu", "Relu", ["a<b"], ["out"])]
    comparator = Comparator(Tolerances())
    ref = np.linspace(1, 2, 10)
    comparisons = [comparator.compare_tensor("a<b", ref, ref * 1.001, runners=("onnxrt", "engine")),
                   comparator.compare_tensor("out", ref, ref * 1.001, runners=("onnxrt", "engine"))]
    outputs = [RunnerOutputs("engine", [{"a<b": ref, "out": ref}], [1.0]),
               RunnerOutputs("onnxrt", [{"a<b": ref, "out": ref}], [1.0])]
    return RunResult(feeds=[{"x": ref}], outputs=outputs, reference="onnxrt", comparisons=comparisons,
                     layerwise=analyze_layers(nodes, comparisons, graph_inputs={"x"}), model_outputs=["out"])


def test_text_report_has_one_greppable_first_divergence_line():
    lines = format_run_result(_result())
    first = [line for line in lines if line.startswith("First divergence:")]
    assert len(first) == 1 and re.match(r"First divergence: a<b \(node conv<1>, op Conv\) max abs error", first[0])
    assert "  input 'x': model input (same data on both sides)" in lines
    assert lines[-1] == "RESULT: FAILED (2 tensor(s) compared over 1 iteration(s) against onnxrt; 2 of 2 " \
                        "comparisons failed)"


def test_html_report_is_self_contained_escaped_and_valid_svg():
    page = render_html(_result(), "polyx run <model>")
    assert "<title>polyx run &lt;model&gt;</title>" in page and "a&lt;b" in page and "a<b" not in page
    assert not re.search(r"<script|<link|src=|url\(", page)
    svg = re.search(r"<svg.*?</svg>", page, re.S).group(0)
    root = ET.fromstring(svg)
    assert len(root.findall("{http://www.w3.org/2000/svg}circle")) == 2
