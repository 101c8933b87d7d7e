"""The store's Lua scripts: read from ``lua/*.lua`` once and registered on a client, as dramatiq loads its own.

A script may be made of several files: library functions first (``take_slot``, ``apply_watch``,
``publish``), then the script that calls them. Each script names its keys and fixed arguments in its first
``local ... = unpack(KEYS)`` and ``= unpack(ARGV...)`` lines; the Python side passes them as the NamedTuples
of the module that calls the script, in the same order, and a test compares the two.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

import redis
from redis.commands.core import Script


@cache
def source(*names: str) -> str:
    """The named ``lua/<name>.lua`` files, in order, as one script."""
    return "\n".join((files(__package__) / "lua" / f"{name}.lua").read_text(encoding="utf-8") for name in names)


def register(client: redis.Redis, *names: str) -> Script:
    """The script made of the named files, registered on ``client`` (sent by its SHA, loaded on first use)."""
    return client.register_script(source(*names))


_UNPACK = re.compile(r"^local\s+([\w,\s]+?)\s*=\s*unpack\((KEYS|ARGV)\b", re.MULTILINE)


def declared(name: str, table: str) -> list[str]:
    """The names a script gives its ``KEYS`` or ``ARGV`` in its ``local a, b = unpack(...)`` line."""
    for names, which in _UNPACK.findall(source(name)):
        if which == table:
            return [n.strip() for n in names.split(",")]
    return []
