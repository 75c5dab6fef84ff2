"""The typed epilogue: applied in order (residual, then activation), partly absorbed by tactics, and read back
from plans field by field."""
from __future__ import annotations

import numpy as np
import pytest

from engine.enums import ActivationType
from engine.ir import Activation, Epilogue, apply_epilogue
from engine.ir.epilogue import ACTIVATION, RESIDUAL

RNG = np.random.default_rng(5)


@pytest.mark.parametrize("activation, reference", [
    (Activation(ActivationType.RELU), lambda y: np.maximum(y, 0)),
    (Activation(ActivationType.CLIP, -0.25, 0.5), lambda y: np.clip(y, -0.25, 0.5)),
    (Activation(ActivationType.SIGMOID), lambda y: 1 / (1 + np.exp(-y))),
    (Activation(ActivationType.LEAKY_RELU, 0.1), lambda y: np.where(y >= 0, y, 0.1 * y)),
])
def test_residual_is_added_before_the_activation(activation, reference) -> None:
    out = RNG.standard_normal((3, 8)).astype(np.float32)
    residual = RNG.standard_normal((3, 8)).astype(np.float32)
    want = reference(out.astype(np.float64) + residual)
    apply_epilogue(Epilogue(residual=1, activation=activation), out, [None, residual], np)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)


def test_output_quantization_is_left_to_the_int8_tactic() -> None:
    with pytest.raises(ValueError, match="only be applied by the INT8 tactic"):
        apply_epilogue(Epilogue(output_scale=0.1), np.zeros(3, np.float32), [], np)


def test_a_tactic_absorbing_parts_leaves_the_rest() -> None:
    full = Epilogue(residual=3, activation=Activation("RELU"))
    assert full.parts() == {RESIDUAL, ACTIVATION}
    assert full.without(frozenset({RESIDUAL})) == Epilogue(activation=Activation(ActivationType.RELU))
    assert full.without(frozenset({RESIDUAL, ACTIVATION})).empty
    assert not full.without(frozenset()).empty


def test_json_round_trip_and_field_checks() -> None:
    epilogue = Epilogue(residual=2, activation=Activation(ActivationType.CLIP, -1, 6))
    assert Epilogue.from_json(epilogue.to_json(), "layer 'c'") == epilogue
    assert Epilogue.from_json({"residual": None, "activation": None, "output_scale": None}, "x").empty
    quantized = Epilogue(activation=Activation(ActivationType.RELU), output_scale=0.05)
    assert Epilogue.from_json(quantized.to_json(), "x") == quantized
    none = {"residual": None, "activation": None, "output_scale": None}
    for bad, message in [({**none, "residual": True}, "residual must be an input position"),
                         ({"residual": None}, "must be an object with 'residual', 'activation' and 'output_scale'"),
                         ({**none, "activation": {"type": "RELU", "alpha": "0", "beta": 0}},
                          "alpha/beta must be numbers"),
                         ({**none, "output_scale": 0.0}, "output_scale must be a positive finite number"),
                         ({**none, "output_scale": float("nan")}, "output_scale must be a positive finite number")]:
        with pytest.raises(ValueError, match=rf"^layer 'c': epilogue .*{message}"):
            Epilogue.from_json(bad, "layer 'c'")
