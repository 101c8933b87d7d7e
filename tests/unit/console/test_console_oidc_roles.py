"""The console's OpenID Connect pieces that need no provider: the role map, the highest role, the user's name,
and the access log that leaves the callback's code out."""

from __future__ import annotations

import logging

import pytest

from worker.console.oidc import HideCallbackQuery, role_of, user_of
from worker.console.settings import parse_role_map
from worker.console.users import Role

ROLE_MAP = {"support-viewers": Role.viewer, "support-agents": Role.agent, "billing-ops": Role.operator}


def test_a_role_map_reads_as_groups_and_their_roles() -> None:
    assert parse_role_map("support-viewers=viewer,support-agents=agent,billing-ops=operator") == ROLE_MAP
    assert parse_role_map(" support-viewers = viewer , Billing Ops=operator ") == {
        "support-viewers": Role.viewer, "Billing Ops": Role.operator}
    # An LDAP group name holds '=': the role is after the last one.
    assert parse_role_map("cn=ops=operator") == {"cn=ops": Role.operator}


@pytest.mark.parametrize(("text", "message"), [
    ("support-agents", "entry 1 is not group=role"),
    ("support-agents=agent,billing-ops=admin", "entry 2 is not group=role"),
    ("=agent", "entry 1 is not group=role"),
    ("support-agents=agent,", "entry 2 is not group=role"),
    ("support-agents=agent,support-agents=viewer", "entry 2 names a group a second time"),
    ("support-agents=Agent", "entry 1 is not group=role"),
])
def test_a_wrong_role_map_is_refused_by_the_entry_s_place(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_role_map(text)
    assert "support-agents" not in str(raised.value) and "admin" not in str(raised.value)


def test_the_highest_role_any_group_maps_to_wins() -> None:
    assert role_of(["everyone", "support-viewers", "billing-ops", "support-agents"], ROLE_MAP) == Role.operator
    assert role_of(["support-viewers"], ROLE_MAP) == Role.viewer
    assert role_of("support-agents", ROLE_MAP) == Role.agent  # a string claim is one group
    assert role_of(["everyone", "Support-Agents"], ROLE_MAP) is None  # group names are matched exactly
    assert role_of(None, ROLE_MAP) is None
    assert role_of({"support-agents": True}, ROLE_MAP) is None
    assert role_of([["support-agents"], 3, "support-viewers"], ROLE_MAP) == Role.viewer


def test_the_user_is_the_preferred_username_else_the_email_else_the_subject() -> None:
    claims = {"sub": "u-1", "email": "alice@example.com", "preferred_username": "alice"}
    assert user_of(claims) == "alice"
    assert user_of(claims | {"preferred_username": ""}) == "alice@example.com"
    assert user_of({"sub": "u-1", "email": None, "preferred_username": 7}) == "u-1"
    assert user_of({"sub": "u-1", "preferred_username": "x" * 300}) == "u-1"
    assert user_of({"sub": "u-1", "preferred_username": "eve\nconsole login: root (operator, oidc)"}) == "u-1"
    assert user_of({}) is None


def test_the_access_log_leaves_the_callback_s_query_out() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("10.0.0.1:5", "GET", "/login/oidc/callback?code=SECRET-CODE&state=s", "1.1", 200),
                               None)
    assert HideCallbackQuery().filter(record)
    assert "SECRET-CODE" not in record.getMessage()
    assert record.getMessage() == '10.0.0.1:5 - "GET /login/oidc/callback?... HTTP/1.1" 200'
    other = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                              ("10.0.0.1:5", "GET", "/search?q=agr_1", "1.1", 200), None)
    assert HideCallbackQuery().filter(other) and "/search?q=agr_1" in other.getMessage()
