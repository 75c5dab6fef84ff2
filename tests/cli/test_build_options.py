import json

import pytest

from polyx.cli.build_options import (
    build_options_from_cli,
    parse_layer_precisions,
    parse_shapes,
    parse_size,
    parse_tolerances,
    parse_value_ranges,
    tolerances_from_flags,
)
from polyx.compare import Tolerances
from polyx.compare.tolerance import DEFAULT_ATOL, DEFAULT_RTOL
from polyx.errors import PolyxError


def test_shapes_polygraphy_spelling():
    assert parse_shapes(["x:[1,3,224,224]", "ids:[2, 16] mask:[2,16]", "scalar:[]", "in:0:[4]"], "--input-shapes") \
        == {"x": (1, 3, 224, 224), "ids": (2, 16), "mask": (2, 16), "scalar": (), "in:0": (4,)}


@pytest.mark.parametrize("value, message", [("x", "expected NAME:\\[d0"), ("x:[1,-2]", ">= 0"),
                                            ("x:[1.5]", "integers"), ("x:[1] x:[2]", "given twice")])
def test_bad_shapes(value, message):
    with pytest.raises(PolyxError, match=message):
        parse_shapes([value], "--input-shapes")


def test_sizes_are_binary_units():
    assert [parse_size(v, "--workspace") for v in ("1G", "512M", "64k", "1.5K", "2GiB", "3MB", "4096")] == \
        [1 << 30, 512 << 20, 64 << 10, 1536, 2 << 30, 3 << 20, 4096]
    with pytest.raises(PolyxError, match="expected a size"):
        parse_size("-1G", "--workspace")


def test_size_spellings_of_every_size_flag():
    """surgeon --size-threshold and --workspace share parse_size: each accepts the other's spellings."""
    assert [parse_size(v, "--size-threshold") for v in ("1Ki", "7B", " 16m ", "1KiB", "1T")] == \
        [1024, 7, 16 << 20, 1024, 1 << 40]
    assert parse_size(None, "--size-threshold") is None
    with pytest.raises(PolyxError, match=r"^--size-threshold '12Q': expected a size"):
        parse_size("12Q", "--size-threshold")


def test_layer_precisions_from_file_and_flags(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"conv1": "fp16", "conv2": "fp16"}))
    assert parse_layer_precisions(["conv2:fp32"], path) == {"conv1": "fp16", "conv2": "fp32"}
    path.write_text("[1, 2]")
    with pytest.raises(PolyxError, match="expected a JSON object"):
        parse_layer_precisions(None, path)


def test_value_ranges_and_tolerances():
    assert parse_value_ranges(["x:[0,1]", "[-1, 2.5]"]) == {"x": (0.0, 1.0), "": (-1.0, 2.5)}
    with pytest.raises(PolyxError, match="low 2.0 is above high 1.0"):
        parse_value_ranges(["x:[2,1]"])
    assert parse_tolerances(["1e-3", "out:0:0.5"], "--atol") == (1e-3, {"out:0": 0.5})
    with pytest.raises(PolyxError, match=">= 0"):
        parse_tolerances(["-1"], "--atol")


def test_tolerances_from_flags_keeps_defaults_for_unset_globals():
    """run and debug build their Tolerances here: a per-output value leaves the global default in place."""
    assert tolerances_from_flags(None, None) == Tolerances(atol=DEFAULT_ATOL, rtol=DEFAULT_RTOL)
    assert tolerances_from_flags(["y:0.5"], ["2e-2"], "median") == \
        Tolerances(atol=DEFAULT_ATOL, rtol=2e-2, per_output_atol={"y": 0.5}, check_error_stat="median")
    with pytest.raises(PolyxError, match="^--rtol 'y:x': 'x' is not a number"):
        tolerances_from_flags(None, ["y:x"])


def test_build_options_from_cli_validates():
    options = build_options_from_cli(input_shapes=["x:[2,3]"], workspace="1M", builder_optimization_level=0)
    assert options.input_shapes == {"x": (2, 3)} and options.workspace_bytes == 1 << 20
    assert options.data_shapes() == {"x": (2, 3)}
    assert build_options_from_cli(int8=True).int8  # INT8 for Q/DQ models; without Q/DQ the builder warns


def test_tactic_sources_any_case_and_unknown_names_listed():
    from polyx.cli.build_options import parse_tactic_sources

    assert parse_tactic_sources(None) is None
    assert parse_tactic_sources(["cuBLAS", "jit_convolutions", "CUBLAS"]) == ["CUBLAS", "JIT_CONVOLUTIONS"]
    with pytest.raises(PolyxError, match=r"--tactic-sources 'cublt': unknown tactic source \(valid: cublas, "
                                         r"cublas_lt, cudnn, edge_mask_convolutions, jit_convolutions\)"):
        parse_tactic_sources(["cublas", "cublt"])
