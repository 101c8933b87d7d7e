"""The webhook registrations this receiver knows, and their secrets, read from a directory.

Each file is one registration: its name is the registration id Vipps returned, its content the secret
(surrounding whitespace ignored). Several at once serve rotation (old and new registration side by side)
and partner-wide plus per-merchant registrations. In Kubernetes the directory is a mounted Secret: the
kubelet swaps its content atomically (the ``..data`` link) and the directory changes with it, so a cheap
check of the entries' ``stat`` on each use finds a change and reloads. Hidden entries (``..data`` and
the timestamped directories) are skipped. Secrets are never logged, nor shown in a ``repr``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path

log = logging.getLogger("worker.webhooks.secrets")

# A secret Vipps returns is a short string; a file far larger is not one (and is not read whole).
MAX_SECRET_BYTES = 4096

Fingerprint = tuple[tuple[str, int, int, int, int], ...]


class SecretsDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fingerprint: Fingerprint | None = None
        self._secrets: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"SecretsDir({str(self.path)!r}, registrations={sorted(self._secrets)!r})"

    def current(self) -> dict[str, str]:
        """Registration id -> secret, as the directory holds them now (reloaded when it changed)."""
        fingerprint = self._fingerprint_now()
        with self._lock:
            if fingerprint != self._fingerprint:
                self._secrets = self._load()
                self._fingerprint = fingerprint
            return dict(self._secrets)

    def registrations(self) -> list[str]:
        return sorted(self.current())

    def _entries(self) -> list[os.DirEntry[str]]:
        with os.scandir(self.path) as found:
            return sorted((e for e in found if not e.name.startswith(".")), key=lambda e: e.name)

    def _fingerprint_now(self) -> Fingerprint:
        """(name, mtime, ctime, size, inode) of each entry, its link followed: changes whenever a file does."""
        try:
            top = os.stat(self.path)
            entries = self._entries()
        except OSError:
            return ()
        out = [("", top.st_mtime_ns, top.st_ctime_ns, 0, top.st_ino)]
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError:
                continue
            out.append((entry.name, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def _load(self) -> dict[str, str]:
        try:
            entries = self._entries()
        except OSError as exc:
            log.error("webhook secrets directory %s cannot be read (%s): every delivery is rejected",
                      self.path, exc.strerror)
            return {}
        secrets: dict[str, str] = {}
        for entry in entries:
            secret = self._read(entry)
            if secret is not None:
                secrets[entry.name] = secret
        if not secrets:
            log.error("no webhook secrets in %s: every delivery is rejected", self.path)
        else:
            log.info("webhook registrations loaded: %s", ", ".join(sorted(secrets)))
        return secrets

    def _read(self, entry: os.DirEntry[str]) -> str | None:
        try:
            if not entry.is_file(follow_symlinks=True):
                return None
            with open(entry.path, "rb") as f:
                raw = f.read(MAX_SECRET_BYTES + 1)
        except OSError as exc:
            log.warning("webhook secret %s cannot be read (%s); skipped", entry.name, exc.strerror)
            return None
        try:
            secret = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            secret = ""
        if not secret or len(raw) > MAX_SECRET_BYTES:
            log.warning("webhook secret %s is empty, not text or too long; skipped", entry.name)
            return None
        return secret


def keep_secret(directory: Path, registration_id: str, secret: str) -> Path:
    """Write the secret where the receiver reads it: atomically, readable by its owner only."""
    if "/" in registration_id or registration_id.startswith("."):
        raise ValueError(f"unusable registration id {registration_id!r}")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret)
        target = directory / registration_id
        os.replace(tmp, target)
        return target
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def forget_secret(directory: Path | None, registration_id: str) -> bool:
    if directory is None or "/" in registration_id:
        return False
    path = directory / registration_id
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed
