"""A user's compare function (`--compare-func-script FILE.py:FUNCTION`, Polygraphy's spelling): called once per
iteration with the two runners' outputs ({name: array}, reference first) and returning {output name: passed}.
Its verdicts replace the tolerance check; the statistics are still computed and reported. Anything it does
wrong (raises, returns something else, judges a tensor that was not compared or leaves one out) is an error that
names the script."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ..errors import PolyxError
from ..user_script import load_function

Outputs = dict[str, np.ndarray]


class UserCompareFunc:
    def __init__(self, function: Callable[[Outputs, Outputs], Mapping[str, bool]], label: str):
        self.function = function
        self.label = label  # how errors name it: "compare func script check.py:func"

    @classmethod
    def from_spec(cls, spec: str) -> UserCompareFunc:
        return cls(load_function(spec, "compare func script"), f"compare func script {spec}")

    def verdicts(self, reference: Outputs, candidate: Outputs, names: list[str]) -> dict[str, bool]:
        try:
            result = self.function({n: reference[n] for n in names}, {n: candidate[n] for n in names})
        except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
            raise PolyxError(f"{self.label}: raised {type(exc).__name__}: {exc}") from None
        if not isinstance(result, Mapping):
            raise PolyxError(f"{self.label}: returned a {type(result).__name__}, expected a dict "
                             "{output name: True (passed) | False (failed)}")
        unknown = sorted(set(result) - set(names))
        if unknown:
            raise PolyxError(f"{self.label}: returned a verdict for '{unknown[0]}', which is not a compared output "
                             f"(compared: {', '.join(names[:8])})")
        missing = [n for n in names if n not in result]
        if missing:
            raise PolyxError(f"{self.label}: returned no verdict for output '{missing[0]}'")
        verdicts = {}
        for name in names:
            value = result[name]
            if not isinstance(value, (bool, np.bool_)):
                raise PolyxError(f"{self.label}: the verdict for '{name}' is a {type(value).__name__}, expected "
                                 "True or False")
            verdicts[name] = bool(value)
        return verdicts
