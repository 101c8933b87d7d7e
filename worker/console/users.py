"""The built-in users: a file of usernames, argon2 password hashes and roles, and checking a login.

The file is YAML or JSON (JSON is YAML): ``users: [{username, password_hash, role}]``. A hash is made with
``vipps-billing console hash-password``. Nothing here logs or shows a password or a hash.
"""

from __future__ import annotations

import enum
import functools
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.problems import one_line


class Role(enum.IntEnum):
    """What a user may do; each role may do all the roles below it may."""

    viewer = 1      # find and see
    agent = 2       # act: stop, capture, refund, cancel
    operator = 3    # dead letters


class UsersError(Exception):
    """The users file cannot be used; the message names the problem, never a hash."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    password_hash: str = Field(min_length=1, repr=False)
    role: str = Field(pattern=r"^(viewer|agent|operator)$")


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[_Entry]


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    password_hash: str = field(repr=False)


_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified when the username is unknown, so an unknown name costs the same time as a wrong password."""
    return _hasher.hash(secrets.token_urlsafe())


def hash_password(password: str) -> str:
    return _hasher.hash(password)


class Users:
    def __init__(self, users: dict[str, User]) -> None:
        self._users = users

    def __len__(self) -> int:
        return len(self._users)

    @classmethod
    def read(cls, path: Path) -> Users:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsersError(f"CONSOLE_USERS_FILE cannot be read: {exc.strerror}") from None
        except yaml.YAMLError:
            raise UsersError("CONSOLE_USERS_FILE is neither YAML nor JSON") from None
        try:
            entries = _File.model_validate(raw).users
        except ValidationError as exc:
            raise UsersError(f"CONSOLE_USERS_FILE: {one_line(exc)}") from None
        users = {e.username: User(e.username, Role[e.role], e.password_hash) for e in entries}
        if len(users) != len(entries):
            raise UsersError("CONSOLE_USERS_FILE names a user twice")
        return cls(users)

    def check(self, username: str, password: str) -> User | None:
        """The user, when the password is theirs; else None (unknown user or wrong password alike)."""
        user = self._users.get(username)
        try:
            _hasher.verify(user.password_hash if user else _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return None
        return user
