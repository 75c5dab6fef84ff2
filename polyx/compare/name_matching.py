"""Pairing outputs whose names differ slightly between two runners (Polygraphy warns and pairs them too): a
TensorFlow-style "output:0" against "output", or a loaded golden file from another exporter. A name pairs only
when exactly one unmatched name on the other side is close to it, so a guess is never ambiguous."""
from __future__ import annotations

import difflib

CLOSE_RATIO = 0.8  # difflib similarity from which two names count as the same output renamed


def match_names(reference: list[str], candidate: list[str]) -> dict[str, str]:
    """{reference name: candidate name} for names present on one side only that have one close partner."""
    ref_only = [name for name in reference if name not in set(candidate)]
    out_only = [name for name in candidate if name not in set(reference)]
    pairs: dict[str, str] = {}
    for name in ref_only:
        close = [other for other in out_only if other not in pairs.values() and _close(name, other)]
        if len(close) == 1 and [n for n in ref_only if n not in pairs and _close(n, close[0])] == [name]:
            pairs[name] = close[0]
    return pairs


def _close(a: str, b: str) -> bool:
    if _stem(a) == _stem(b):
        return True
    return difflib.SequenceMatcher(None, a, b).ratio() >= CLOSE_RATIO


def _stem(name: str) -> str:
    """"output:0" -> "output": the port suffix TensorFlow-converted models carry."""
    base, sep, port = name.rpartition(":")
    return base if sep and port.isdigit() else name
