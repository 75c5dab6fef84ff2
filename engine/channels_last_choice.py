"""BuilderConfig.channels_last = "auto": keep a convolution chain HWC only where its timed layers say it pays.

TensorRT times formats and picks; here the builder builds two variants of the network, every chain LINEAR and
every chain HWC, times each chain member's chosen tactic (and each REFORMAT the chain needs) at profile 0's opt
shapes, and compares per chain

    LINEAR: sum(members' times) + the precision REFORMATs at its ends (FP16 builds have them either way)
    HWC:    sum(members' times) + its boundary REFORMATs + those precision REFORMATs (now converting the layout too)

The chain is HWC when its HWC time is lower (a tie keeps LINEAR: fewer layers). A REFORMAT shared by two chains
(one tensor entering both) is charged to each: either one alone needs the whole copy. Chains are separated by
LINEAR layers, so one chain's choice does not change another's cost. The choice is recorded in the plan's
meta["channels_last"] (validated when loading by `validate_choice_record`; `polyx inspect model` shows it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import PlanFormatError

if TYPE_CHECKING:  # plan.py validates the record: no import of the passes for that
    from .passes.tensor_formats import FormatChain

MODE = "auto"
CHAIN_FIELDS = {"first": str, "layers": int, "linear_ms": float, "hwc_ms": float, "hwc": bool}


@dataclass(frozen=True)
class ChainChoice:
    """One chain's comparison: the first member's name (the chain's key), its member count, both times, the choice."""

    first: str
    layers: int
    linear_ms: float
    hwc_ms: float
    hwc: bool

    def to_json(self) -> dict[str, Any]:
        return {"first": self.first, "layers": self.layers, "linear_ms": self.linear_ms, "hwc_ms": self.hwc_ms,
                "hwc": self.hwc}

    def log_line(self) -> str:
        return (f"channels-last auto: chain at '{self.first}' ({self.layers} layers): LINEAR {self.linear_ms:.4f} ms, "
                f"HWC {self.hwc_ms:.4f} ms incl. reformats -> {'HWC' if self.hwc else 'LINEAR'}")


def same_chains(linear: list[FormatChain], hwc: list[FormatChain]) -> bool:
    """Whether both variants found the same chains (the pipeline before the format pass is deterministic)."""
    return [c.members for c in linear] == [c.members for c in hwc]


def layers_to_time(chains: list[FormatChain], hwc: bool) -> frozenset[str]:
    """The layers each variant times: chain members and the precision REFORMATs at their ends, plus, in the HWC
    variant, the chains' own REFORMATs."""
    names = {name for chain in chains for name in (*chain.members, *chain.converted)}
    if hwc:
        names.update(name for chain in chains for name in chain.reformats)
    return frozenset(names)


def choose_chains(chains: list[FormatChain], linear_ms: dict[str, float],
                  hwc_ms: dict[str, float]) -> list[ChainChoice]:
    """Each chain's choice from the layer times of the LINEAR and the HWC variant. `chains`: the HWC variant's
    records (they list the reformats). A layer without a time (none was measured) is a ValueError naming it."""
    def total(names, times: dict[str, float], variant: str) -> float:
        missing = [name for name in names if name not in times]
        if missing:
            raise ValueError(f"layer '{missing[0]}' was not timed in the {variant} variant")
        return float(sum(times[name] for name in names))

    choices = []
    for chain in chains:
        linear = total((*chain.members, *chain.converted), linear_ms, "LINEAR")
        hwc = total((*chain.members, *chain.reformats, *chain.converted), hwc_ms, "HWC")
        choices.append(ChainChoice(chain.first, len(chain.members), linear, hwc, hwc < linear))
    return choices


def choice_record(choices: list[ChainChoice]) -> dict[str, Any]:
    """What the plan's meta["channels_last"] holds."""
    return {"mode": MODE, "chains": [choice.to_json() for choice in choices]}


def validate_choice_record(record: Any) -> None:
    """meta["channels_last"], field by field (absent in plans built without "auto"); PlanFormatError names the
    field at fault."""
    if record is None:
        return
    where = "plan: meta 'channels_last'"
    if not isinstance(record, dict) or set(record) != {"mode", "chains"}:
        raise PlanFormatError(f"{where}: must be an object with 'mode' and 'chains', got {record!r:.100}")
    if record["mode"] != MODE:
        raise PlanFormatError(f"{where}.mode: must be {MODE!r}, got {record['mode']!r:.50}")
    if not isinstance(record["chains"], list):
        raise PlanFormatError(f"{where}.chains: must be a list, got {type(record['chains']).__name__}")
    for index, chain in enumerate(record["chains"]):
        field = f"{where}.chains[{index}]"
        if not isinstance(chain, dict) or set(chain) != set(CHAIN_FIELDS):
            raise PlanFormatError(f"{field}: must be an object with {', '.join(CHAIN_FIELDS)}, got {chain!r:.100}")
        for key, kind in CHAIN_FIELDS.items():
            if not _valid(chain[key], kind):
                raise PlanFormatError(f"{field}.{key}: must be {_EXPECTED[kind]}, got {chain[key]!r:.50}")
        if chain["hwc"] != (chain["hwc_ms"] < chain["linear_ms"]):
            raise PlanFormatError(f"{field}.hwc: {chain['hwc']} contradicts the times (HWC is chosen exactly when "
                                  f"hwc_ms < linear_ms)")


_EXPECTED = {float: "a finite time >= 0 (ms)", int: "a layer count >= 1", str: "a layer name",
             bool: "true or false"}


def _valid(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and value >= 0
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return isinstance(value, kind)
