import numpy as np

from polyx.compare import Comparator, GraphNode, Tolerances, analyze_layers

# a -> A -> b -> B(b, w) -> c -> C -> d ; the comparison lists tensors out of order on purpose
NODES = [GraphNode("A", "Relu", ["x"], ["b"]), GraphNode("B", "MatMul", ["b", "w"], ["c"]),
         GraphNode("C", "Softmax", ["c"], ["d"])]


def _comparisons(errors: dict[str, float]):
    comparator = Comparator(Tolerances(atol=1e-5, rtol=1e-5))
    ref = np.linspace(1, 2, 16)
    return [comparator.compare_tensor(name, ref, ref * (1 + err)) for name, err in errors.items()]


def test_first_divergence_is_first_failure_in_topological_order_with_input_errors():
    report = analyze_layers(NODES, _comparisons({"d": 1e-1, "c": 1e-2, "b": 1e-7}), graph_inputs={"x"},
                            constants={"w"}, engine_layers=[{"name": "B", "type": "MATRIX_MULTIPLY",
                                                             "tactic": "gemm", "fused_from": []}])
    assert [t.name for t in report.tensors] == ["b", "c", "d"]
    assert report.compared_count == 3 and report.failed_count == 2
    first = report.first_divergence
    assert (first.name, first.node, first.op) == ("c", "B", "MatMul")
    assert np.isclose(first.max_relative, 1e-2)
    notes = {i.name: (i.verdict.passed if i.verdict else i.note) for i in report.divergence_inputs}
    assert notes == {"b": True, "w": "weights/constant"}
    assert report.error_created_at_divergence
    assert report.engine_layers == ["B (MATRIX_MULTIPLY, tactic gemm)"]
    assert [t.name for t in report.worst] == ["d", "c", "b"]


def test_uncompared_input_means_the_error_may_be_inherited():
    report = analyze_layers(NODES, _comparisons({"c": 1e-2}), graph_inputs={"x"}, constants={"w"})
    assert report.first_divergence.name == "c"
    assert [(i.name, i.note) for i in report.divergence_inputs][0] == ("b", "not compared")
    assert not report.error_created_at_divergence


def test_all_passing_has_no_divergence_and_failures_aggregate_over_iterations():
    comparator = Comparator(Tolerances())
    ref = np.ones(4)
    results = [comparator.compare_tensor("b", ref, ref, iteration=0),
               comparator.compare_tensor("b", ref, ref + 1, iteration=1)]
    report = analyze_layers(NODES, results)
    assert report.compared_count == 1 and report.first_divergence.name == "b"
    assert analyze_layers(NODES, results[:1]).first_divergence is None
