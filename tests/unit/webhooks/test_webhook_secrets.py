"""The registrations and secrets in a directory: read, re-read when it changes, never shown."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from worker.webhooks.secrets import MAX_SECRET_BYTES, SecretsDir


def test_one_file_per_registration_whitespace_ignored(tmp_path: Path) -> None:
    (tmp_path / "reg-a").write_text("secret-a\n")
    (tmp_path / "reg-b").write_text("  secret-b  ")
    assert SecretsDir(tmp_path).current() == {"reg-a": "secret-a", "reg-b": "secret-b"}


def test_a_change_is_seen_on_the_next_use(tmp_path: Path) -> None:
    secrets = SecretsDir(tmp_path)
    assert secrets.current() == {}
    (tmp_path / "reg-a").write_text("one")
    assert secrets.current() == {"reg-a": "one"}
    (tmp_path / "reg-b").write_text("two")
    assert secrets.registrations() == ["reg-a", "reg-b"]
    (tmp_path / "reg-a").unlink()
    assert secrets.current() == {"reg-b": "two"}
    (tmp_path / "reg-b").write_text("three, longer")
    assert secrets.current() == {"reg-b": "three, longer"}


def test_an_unchanged_directory_is_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "reg-a").write_text("one")
    secrets = SecretsDir(tmp_path)
    secrets.current()
    loads = []
    monkeypatch.setattr(secrets, "_load", lambda: loads.append(1) or {})
    for _ in range(5):
        assert secrets.current() == {"reg-a": "one"}
    assert loads == []


def kubelet_update(mount: Path, generation: int, files: dict[str, str]) -> None:
    """What the kubelet does to a mounted Secret: a new timestamped directory, ``..data`` swapped atomically,
    and one visible link per key into ``..data``."""
    data = mount / f"..2026_10_01_07_12_4{generation}.{generation}"
    data.mkdir()
    for name, value in files.items():
        (data / name).write_text(value)
    tmp_link = mount / "..data_tmp"
    tmp_link.symlink_to(data.name)
    os.replace(tmp_link, mount / "..data")
    for name in files:
        if not (mount / name).is_symlink():
            (mount / name).symlink_to(f"..data/{name}")
    for name in os.listdir(mount):
        if not name.startswith(".") and name not in files:
            (mount / name).unlink()


def test_a_mounted_kubernetes_secret_rotates(tmp_path: Path) -> None:
    kubelet_update(tmp_path, 1, {"old-reg": "old-secret"})
    secrets = SecretsDir(tmp_path)
    assert secrets.current() == {"old-reg": "old-secret"}
    kubelet_update(tmp_path, 2, {"old-reg": "old-secret", "new-reg": "new-secret"})
    assert secrets.current() == {"old-reg": "old-secret", "new-reg": "new-secret"}
    kubelet_update(tmp_path, 3, {"new-reg": "new-secret"})
    assert secrets.current() == {"new-reg": "new-secret"}


def test_a_missing_or_unusable_entry_is_skipped_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "binary").write_bytes(b"\xff\xfe")
    (tmp_path / "huge").write_text("x" * (MAX_SECRET_BYTES + 1))
    (tmp_path / "subdir").mkdir()
    (tmp_path / "dangling").symlink_to("nowhere")
    (tmp_path / "good").write_text("fine")
    with caplog.at_level(logging.INFO, logger="worker.webhooks.secrets"):
        assert SecretsDir(tmp_path).current() == {"good": "fine"}
    assert "empty" in caplog.text and "binary" in caplog.text and "huge" in caplog.text


def test_a_missing_directory_is_no_registrations(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="worker.webhooks.secrets"):
        assert SecretsDir(tmp_path / "absent").current() == {}
    assert "every delivery is rejected" in caplog.text


def test_secrets_are_never_logged_nor_shown(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "reg-a").write_text("s3cr3t-Qx7v")
    with caplog.at_level(logging.DEBUG):
        secrets = SecretsDir(tmp_path)
        secrets.current()
    assert "reg-a" in caplog.text and "s3cr3t" not in caplog.text
    assert "reg-a" in repr(secrets) and "s3cr3t" not in repr(secrets)
