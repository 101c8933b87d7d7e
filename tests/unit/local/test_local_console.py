"""The support console in the local stack: its one-time login on disk (a hash only, owner-only files) and its
environment."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from worker.console.users import Role, Users, hash_password
from worker.local.console import console_env, password_hash, start_hash, write_login
from worker.local.processes import StackError
from worker.runtime.settings import WorkerSettings

PASSWORD = "a-one-time-password-for-this-test"


def test_the_login_files_hold_a_hash_only_and_are_the_owners_alone(tmp_path: Path) -> None:
    users_file, secret_file = write_login(tmp_path, "support", hash_password(PASSWORD))

    for path in (users_file, secret_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert PASSWORD not in path.read_text()
    assert len(secret_file.read_text()) >= 32
    users = Users.read(users_file)
    user = users.check("support", PASSWORD)
    assert user is not None and user.role is Role.operator
    assert users.check("support", "another password") is None


def test_login_files_are_never_written_over(tmp_path: Path) -> None:
    write_login(tmp_path, "support", hash_password(PASSWORD))
    with pytest.raises(FileExistsError):
        write_login(tmp_path, "support", hash_password("another password"))


def test_the_hash_comes_from_the_consoles_own_command(tmp_path: Path) -> None:
    made = password_hash(start_hash(os.environ), PASSWORD)

    users_file, _ = write_login(tmp_path, "support", made)
    assert Users.read(users_file).check("support", PASSWORD) is not None
    assert Users.read(users_file).check("support", PASSWORD + "x") is None


def test_a_failed_hash_is_a_stack_error() -> None:
    failing = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    with pytest.raises(StackError, match=r"password hash failed \(exit 3\)"):
        password_hash(failing, PASSWORD)


def test_the_console_gets_the_workers_redis_and_simulator_and_none_of_the_callers_settings(tmp_path: Path) -> None:
    caller = {"PATH": "/bin", "VIPPS_CLIENT_SECRET": "real", "VIPPS_ENV": "production",
              "CONSOLE_USERS_FILE": "/etc/theirs.yaml", "CONSOLE_SESSION_SECRET": "theirs" * 8,
              "CONSOLE_COOKIE_SECURE": "true", "REDIS_SENTINELS": "s:26379", "REDIS_SENTINEL_MASTER": "m"}
    env = console_env(caller, redis_url="redis://r/14", simulator_url="http://sim",
                      settings=WorkerSettings(dramatiq_namespace="ns", key_prefix="kp"),
                      users_file=tmp_path / "u.json", secret_file=tmp_path / "s")

    assert env["PATH"] == "/bin"
    assert not {"VIPPS_CLIENT_SECRET", "CONSOLE_SESSION_SECRET", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER"} & set(env)
    assert (env["REDIS_URL"], env["DRAMATIQ_NAMESPACE"], env["KEY_PREFIX"]) == ("redis://r/14", "ns", "kp")
    assert (env["VIPPS_ENV"], env["VIPPS_BASE_URL"]) == ("simulator", "http://sim")
    assert env["CONSOLE_USERS_FILE"] == str(tmp_path / "u.json")
    assert env["CONSOLE_SESSION_SECRET_FILE"] == str(tmp_path / "s")
    assert env["CONSOLE_COOKIE_SECURE"] == "false"
