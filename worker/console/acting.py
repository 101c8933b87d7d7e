"""Acting from the console: stop an agreement, capture, refund or cancel a charge, and a command's page.

Each action takes two posts. The first runs the pre-checks (``worker.core.actions``, the CLI's own) against
Vipps now and answers with a confirmation page that names the amount in kroner and øre; nothing is sent.
The second, confirmed, runs the pre-checks again, puts the command on the queue with the operator and reason,
waits a little for the worker's outcome and sends the browser to the command's page. The command id is fixed
on the confirmation page, so a confirmation posted twice is one command: the worker carries it out once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from worker.console import pages
from worker.console.finder import describe_error
from worker.console.pages import e, layout
from worker.console.sessions import Session
from worker.core import actions
from worker.core.actions import Action, Refused
from worker.core.commands import lookup
from worker.core.control import Control, new_command_id
from worker.core.money import parse_kroner
from worker.core.producer import InvalidCommand
from worker.vipps import VippsClient, errors

if TYPE_CHECKING:
    from worker.console.app import Console

log = logging.getLogger("worker.console")

COMMAND_ID = re.compile(r"^console-[0-9a-f-]{36}$")
Plan = Callable[[VippsClient, str], Action]


class Acting:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.ops = console.finder.ops

    # -- the actions ---------------------------------------------------------------------------------

    def stop(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        agreement_id = request.path_params["agreement_id"]
        return self._act(session, form, "stop", pages.agreement_path(agreement_id),
                         lambda vipps, cid: actions.stop_agreement(vipps, agreement_id, str(session.user),
                                                                   form.get("reason", ""), cid))

    def move(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        p = request.path_params
        agreement_id, charge_id, verb = p["agreement_id"], p["charge_id"], p["verb"]
        if verb not in ("capture", "refund", "cancel"):
            return HTMLResponse(pages.problem(session, "Not found", "No such action."), status_code=404)
        back = pages.charge_path(agreement_id, charge_id)
        if verb == "cancel":
            return self._act(session, form, verb, back, lambda vipps, cid: actions.cancel_charge(
                vipps, agreement_id, charge_id, str(session.user), form.get("reason", ""), cid))
        try:
            amount = _amount(form)
        except ValueError as exc:
            return self._refused(session, f"charge.{verb}", str(exc), back, form, 400)
        kind: actions.Move = "capture" if verb == "capture" else "refund"
        return self._act(session, form, verb, back, lambda vipps, cid: actions.move_money(
            vipps, kind, agreement_id, charge_id, amount, str(session.user), form.get("reason", ""),
            command_id=cid))

    def _act(self, session: Session, form: dict[str, str], verb: str, back: str, plan: Plan) -> Response:
        confirmed = form.get("confirm") == "yes"
        command_id = form.get("command_id", "") if confirmed else new_command_id("console")
        if not COMMAND_ID.match(command_id):
            return self._refused(session, f"action {verb}", "the confirmation is not valid; start again", back,
                                 form, 400)
        msn = form.get("msn") or None
        try:
            merchant = self.console.finder.msn(msn)
            action = plan(self.ops.vipps(msn=merchant), command_id)
        except Refused as exc:
            return self._refused(session, _name(verb), str(exc), back, form, 409)
        except InvalidCommand as exc:
            return self._refused(session, _name(verb), str(exc), back, form, 400)
        except errors.VippsError as exc:
            return self._refused(session, _name(verb), describe_error(exc), back, form, 502)
        if not confirmed:
            return HTMLResponse(confirmation(session, action, verb, back, form, command_id, msn))
        sent = self.ops.send(action.command | {"msn": merchant})
        log.info("console action %s by %s: %s (command %s, reason %r)", action.name, session.user, action.summary,
                 sent, action.command.get("reason"))
        outcome = wait_outcome(self.ops, sent, merchant, self.console.settings.console_action_wait_seconds)
        self.console.metrics.action(action.name, outcome)
        return RedirectResponse(command_path(sent, msn), status_code=303)

    def _refused(self, session: Session, name: str, text: str, back: str, form: dict[str, str],
                 status: int) -> Response:
        if name in ("agreement.stop", "charge.capture", "charge.refund", "charge.cancel"):
            self.console.metrics.action(name, "refused")
        back_path = back + (f"?{urlencode({'msn': form['msn']})}" if form.get("msn") else "")
        body = (f'<h1>Not sent</h1><p class="error" id="refused">{e(text)}</p>'
                f'<p><a href="{e(back_path)}">Back</a></p>')
        return HTMLResponse(layout("Not sent", body, session), status_code=status)

    # -- a command's page ------------------------------------------------------------------------------

    def command(self, request: Request, session: Session) -> Response:
        command_id = request.path_params["command_id"]
        msn = request.query_params.get("msn") or None
        found = lookup(self.ops, command_id, self.console.finder.msn(msn))
        if found is None:
            return HTMLResponse(pages.problem(session, "No such command", f"No command {command_id} in the ledger "
                                              "or the dead letters: still queued, never sent, or older than "
                                              "LEDGER_RETENTION_DAYS."), status_code=404)
        return HTMLResponse(pages.command(session, found, msn))


def wait_outcome(ops: Control, command_id: str, msn: str, seconds: float) -> str:
    """succeeded or failed once the worker recorded it; pending when it has not within ``seconds`` (a page
    does not wait longer: the command goes on, and its page shows it)."""
    deadline = time.monotonic() + seconds
    while True:
        found = ops.outcome(command_id, msn)
        if found is not None:
            return "succeeded" if found.status == "succeeded" else "failed"
        if time.monotonic() > deadline:
            return "pending"
        time.sleep(0.1)


def _name(verb: str) -> str:
    return "agreement.stop" if verb == "stop" else f"charge.{verb}"


def _amount(form: dict[str, str]) -> int | None:
    """The amount in øre: as confirmed (``amount_minor``), or as typed in kroner; None for all that is left."""
    if form.get("confirm") == "yes":
        return int(form["amount_minor"]) if form.get("amount_minor", "").isdigit() else None
    typed = form.get("amount", "").strip()
    return parse_kroner(typed) if typed else None


def command_path(command_id: str, msn: str | None) -> str:
    return f"/commands/{quote(command_id, safe='')}" + (f"?{urlencode({'msn': msn})}" if msn else "")


def confirmation(session: Session, action: Action, verb: str, back: str, form: dict[str, str], command_id: str,
                 msn: str | None) -> str:
    """The page that shows what will be sent and sends it only when confirmed."""
    amount = f" ({action.amount} øre)" if action.amount is not None else ""
    hidden = {"csrf": session.csrf, "confirm": "yes", "command_id": command_id, "reason": form.get("reason", ""),
              **({"msn": msn} if msn else {}),
              **({"amount_minor": str(action.amount)} if action.amount is not None else {})}
    fields = "".join(f'<input type="hidden" name="{e(k)}" value="{e(v)}">' for k, v in hidden.items())
    back_path = back + (f"?{urlencode({'msn': msn})}" if msn else "")
    title = f"Confirm {'stop' if verb == 'stop' else verb}"
    body = (f"<h1>{e(title)}</h1><p id=\"summary\"><strong>{e(action.summary)}</strong>{e(amount)}</p>"
            + pages.pairs([("reason", e(action.command.get("reason"))), ("operator", e(session.user)),
                          ("command id", e(command_id))])
            + f'<form id="confirm" method="post" action="{e(back)}/{e(verb)}">{fields}'
            f'<button type="submit">{e(title)}</button> <a href="{e(back_path)}">Back</a></form>')
    return layout(title, body, session)
