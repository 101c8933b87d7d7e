"""Dead letters in the console (operators): list, inspect, dry-run and replay.

A replay follows ``vipps-billing dlq replay``'s rules, which live in ``worker.core.replay``: Vipps is asked
now whether the command is still needed, a replay goes out under ``<command_id>.rN`` recorded on the letter
first, and a letter already replayed is never replayed again from here. The console replays one letter at a
time with the operator and a reason on the replayed command; changed fields (``--set``) and bulk replays stay
with the CLI.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from worker.console import pages
from worker.console.acting import command_path, wait_outcome
from worker.console.pages import csrf_field, e, layout, pairs, table
from worker.console.sessions import Session
from worker.core.actions import Refused, audit
from worker.core.replay import Decision
from worker.store.deadletters import DeadLetter

if TYPE_CHECKING:
    from worker.console.app import Console

log = logging.getLogger("worker.console")

LIST_LIMIT = 200


def letter_path(letter_id: str) -> str:
    return f"/dead-letters/{quote(letter_id, safe='')}"


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class DeadLetterPages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.ops = console.finder.ops

    def _letter(self, request: Request) -> DeadLetter | None:
        return self.ops.dead_letters.get(request.path_params["letter_id"])

    def _missing(self, session: Session) -> Response:
        return HTMLResponse(pages.problem(session, "No such dead letter", "It was replayed and purged, or never "
                                          "existed."), status_code=404)

    def index(self, request: Request, session: Session) -> Response:
        q = request.query_params
        reason, kind, msn = q.get("reason") or None, q.get("type") or None, q.get("msn") or None
        letters = self.ops.dead_letters.find(limit=LIST_LIMIT, reason=reason, command_type=kind, msn=msn)
        rows = [[pages.link(letter_path(x.id), x.id, None), e(_when(x.at_ms)), e(x.msn), e(x.reason),
                 e(x.command_id), e(x.command_type), e(x.detail[:80]), e(", ".join(x.replayed_as) or None)]
                for x in letters]
        filters = "".join(f'<label>{e(label)} <input name="{name}" value="{e(value or "")}" size="18"></label> '
                          for label, name, value in (("Reason", "reason", reason), ("Type", "type", kind),
                                                     ("MSN", "msn", msn)))
        body = (f"<h1>Dead letters</h1><p>{len(letters)} shown of {self.ops.dead_letters.count()}, newest first.</p>"
                f'<form method="get" action="/dead-letters">{filters}<button type="submit">Filter</button></form>'
                + (table(("dead letter", "at", "msn", "reason", "command", "type", "detail", "replayed as"), rows)
                   if rows else "<p>No dead letters.</p>"))
        return HTMLResponse(layout("Dead letters", body, session))

    def show(self, request: Request, session: Session) -> Response:
        letter = self._letter(request)
        if letter is None:
            return self._missing(session)
        return HTMLResponse(layout(f"Dead letter {letter.id}", _letter_body(session, letter), session))

    def dry_run(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        letter = self._letter(request)
        if letter is None:
            return self._missing(session)
        decision = self.ops.decide_replay(letter)
        body = _decision(decision) + _letter_body(session, letter, decision)
        return HTMLResponse(layout(f"Dead letter {letter.id}", body, session))

    def replay(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        letter = self._letter(request)
        if letter is None:
            return self._missing(session)
        try:
            who = audit(str(session.user), form.get("reason", ""))
        except Refused as exc:
            return self._not_replayed(session, letter, str(exc), 409)
        decision = self.ops.decide_replay(letter)
        if not decision.replay:
            return self._not_replayed(session, letter, decision.why, 409)
        sent = self.ops.replay(decision, who)
        payload = letter.payload if isinstance(letter.payload, dict) else {}
        msn = letter.msn or payload.get("msn")
        merchant = self.console.finder.msn(msn)
        log.info("console replay of dead letter %s by %s as %s (reason %r)", letter.id, session.user, sent,
                 who["reason"])
        outcome = wait_outcome(self.ops, sent, merchant, self.console.settings.console_action_wait_seconds)
        self.console.metrics.action("dead_letter.replay", outcome)
        return RedirectResponse(command_path(sent, msn), status_code=303)

    def _not_replayed(self, session: Session, letter: DeadLetter, why: str, status: int) -> Response:
        self.console.metrics.action("dead_letter.replay", "refused")
        body = (f'<h1>Not replayed</h1><p class="error" id="refused">{e(why)}</p>'
                f'<p><a href="{e(letter_path(letter.id))}">Back</a></p>')
        return HTMLResponse(layout("Not replayed", body, session), status_code=status)


def _json(value: Any) -> str:
    return f"<pre>{e(json.dumps(value, indent=2, ensure_ascii=False, default=str))}</pre>"


def _decision(decision: Decision) -> str:
    verdict = (f"Would replay as {decision.new_command_id}: {decision.why}" if decision.replay
               else f"Would not replay: {decision.why}")
    return f'<p id="decision" class="{"ok" if decision.replay else "error"}">{e(verdict)}</p>'


def _letter_body(session: Session, letter: DeadLetter, decision: Decision | None = None) -> str:
    replays = ", ".join(f"{cid} ({_when(ms)})" for cid, ms in zip(letter.replayed_as, letter.replayed_ms,
                                                                   strict=False))
    msn_query = f"?{urlencode({'msn': letter.msn})}" if letter.msn else ""
    command = (f'<a href="{e(command_path(letter.command_id, None) + msn_query)}">{e(letter.command_id)}</a>'
               if letter.command_id else "-")
    items = [("reason", e(letter.reason)), ("detail", e(letter.detail)), ("at", e(_when(letter.at_ms))),
             ("command", command), ("type", e(letter.command_type)), ("merchant (MSN)", e(letter.msn)),
             ("attempts", e(letter.attempts)), ("queue", e(letter.queue)), ("replayed as", e(replays or None))]
    path = letter_path(letter.id)
    dry = (f'<form id="dry-run" method="post" action="{e(path)}/dry-run">{csrf_field(session)}'
           '<button type="submit">Dry run: would it be replayed?</button></form>')
    replay = (f'<form id="replay" method="post" action="{e(path)}/replay">{csrf_field(session)}'
              '<p><label>Reason <input name="reason" required maxlength="500" size="40"></label> '
              '<button type="submit">Replay now</button></p><p class="muted">Vipps is asked again first; only '
              "what is still needed is sent.</p></form>")
    if decision is not None and not decision.replay:
        replay = ""
    return (f"<h1>Dead letter {e(letter.id)}</h1>" + pairs(items)
            + f'<section class="act"><h2>Replay</h2>{dry}{replay}</section>'
            + ("<h2>Problem</h2>" + _json(letter.problem) if letter.problem else "")
            + "<h2>Command</h2>" + _json(letter.payload))
