"""`--resume FILE`: a debug search's verdicts, kept so that an interrupted search continues where it stopped.

Every judged candidate is appended as one JSON line the moment its verdict is known. Searches are deterministic
given their verdicts, so a rerun with the same model (by content) and the same settings takes each recorded
verdict instead of building and checking again, arrives where the interruption struck, and goes on from there.
A file written for another model or other settings is refused, never silently mixed in.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..data.files import check_writable
from ..errors import PolyxError
from .checks import Verdict

FORMAT = "polyx-debug-journal"
VERSION = 1


def file_digest(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class VerdictJournal:
    """Verdicts by candidate key (any JSON value that names the candidate), read from and appended to `path`."""

    def __init__(self, path: str | os.PathLike, identity: dict[str, Any]):
        self.path = check_writable(path)
        self.identity = json.loads(json.dumps(identity, sort_keys=True, default=str))
        self.verdicts: dict[str, Verdict] = {}
        self.replayed = 0
        if self.path.exists():
            self._read()
        else:
            self._append({"format": FORMAT, "version": VERSION, "identity": self.identity})

    def _read(self) -> None:
        try:
            lines = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PolyxError(f"{self.path}: not a debug journal ({exc})") from None
        header = lines[0] if lines else {}
        if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
            raise PolyxError(f"{self.path}: not a polyx debug journal (--resume)")
        if header.get("identity") != self.identity:
            differing = sorted(key for key in {*self.identity, *header.get("identity", {})}
                               if self.identity.get(key) != header.get("identity", {}).get(key))
            raise PolyxError(f"{self.path}: written by another debug run (differs in {', '.join(differing)}); "
                             "pass another --resume file or delete this one")
        for entry in lines[1:]:
            self.verdicts[entry["key"]] = Verdict(entry["passed"], entry["summary"],
                                                  tuple(entry["signature"]) if entry.get("signature") else None,
                                                  bool(entry.get("unusable")))

    def _append(self, entry: dict[str, Any]) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")

    @staticmethod
    def _key(candidate: Any) -> str:
        return json.dumps(candidate, sort_keys=True, default=str)

    def get(self, candidate: Any) -> Verdict | None:
        """The recorded verdict of this candidate, if an earlier run judged it."""
        verdict = self.verdicts.get(self._key(candidate))
        if verdict is not None:
            self.replayed += 1
        return verdict

    def record(self, candidate: Any, verdict: Verdict) -> None:
        key = self._key(candidate)
        self.verdicts[key] = verdict
        self._append({"key": key, "passed": verdict.passed, "summary": verdict.summary, "unusable": verdict.unusable,
                      "signature": list(verdict.signature) if verdict.signature else None})


def journal_for(path: Path | None, command: str, model: Path, settings: dict[str, Any]) -> VerdictJournal | None:
    """The journal of `--resume PATH` for this command, model and settings; None without --resume."""
    if path is None:
        return None
    return VerdictJournal(path, {"command": command, "model_sha256": file_digest(model), **settings})
