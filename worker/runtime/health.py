"""Health beats: each worker process writes one file in the metrics directory every few seconds.

The HTTP endpoint (its own process) reads them: ``/healthz`` wants a recent beat from every
process, ``/readyz`` also that no process has had its Vipps credentials refused (a worker with
wrong credentials is not ready, even while a cached token still works for a while).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

STALE_SECONDS = 15.0


@dataclass(frozen=True)
class Beat:
    pid: int
    age_seconds: float
    credentials_refused: bool


def beat_file(directory: Path, pid: int | None = None) -> Path:
    return directory / f"health-{pid if pid is not None else os.getpid()}"


def write_beat(directory: Path, *, credentials_refused: bool) -> None:
    path = beat_file(directory)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"credentials_refused": credentials_refused}))
    temporary.replace(path)  # a reader never sees half a file


def read_beats(directory: Path) -> list[Beat]:
    beats = []
    now = time.time()
    for path in directory.glob("health-*"):
        if path.suffix == ".tmp":
            continue
        try:
            body = json.loads(path.read_text() or "{}")
            age = now - path.stat().st_mtime
        except (OSError, ValueError):
            continue  # replaced or removed while read
        beats.append(Beat(int(path.name.split("-", 1)[1]), age,
                          bool(body.get("credentials_refused")) if isinstance(body, dict) else False))
    return beats


def alive(beats: list[Beat]) -> bool:
    """Every worker process beat recently, and there is at least one."""
    return bool(beats) and all(b.age_seconds < STALE_SECONDS for b in beats)
