"""The console's pages as HTML, every value escaped where it is put in (``e``); no inline script or style,
so the Content-Security-Policy can forbid both."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from worker.console.finder import AgreementView, ChargeView, Match
from worker.console.sessions import Session
from worker.console.users import Role
from worker.core.actions import possible_moves
from worker.core.lookups import confirmation_url, failure_in_words
from worker.core.money import money
from worker.store.ledger import TERMINAL
from worker.vipps import models


def style() -> bytes:
    """The console's style sheet (a file of the package, so the CSP can forbid inline style)."""
    return resources.files("worker.console").joinpath("static/console.css").read_bytes()


def e(value: Any) -> str:
    """A value as HTML text; None as a dash."""
    return "-" if value is None else escape(str(value), quote=True)


def layout(title: str, body: str, session: Session | None, refresh: int | None = None, head: str = "") -> str:
    """A whole page; ``refresh`` reloads it after that many seconds (a meta tag: no script needed)."""
    user, nav = "", ""
    if session is not None and session.logged_in:
        user = (f'<span>{e(session.user)} ({e(session.role)}) '
                f'<form class="inline" method="post" action="/logout">{csrf_field(session)}'
                '<button type="submit">Log out</button></form></span>')
        nav = ' <a href="/dead-letters">Dead letters</a>' if session.may(Role.operator) else ""
    reload = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(title)} · Vipps billing support</title>{reload}{head}"
            '<link rel="stylesheet" href="/static/console.css"></head><body>'
            f'<header><nav><a href="/">Find</a>{nav}</nav>{user}</header><main>{body}</main></body></html>')


def csrf_field(session: Session) -> str:
    return f'<input type="hidden" name="csrf" value="{e(session.csrf)}">'


def login(session: Session, error: str | None = None, *, password: bool = True, sso: str | None = None) -> str:
    """The login page: the password form when there are built-in users, a link to ``sso`` (the provider's name)
    when OpenID Connect is on."""
    problem = f'<p class="error">{e(error)}</p>' if error else ""
    link = f'<p><a href="/login/oidc">Log in with {e(sso)}</a></p>' if sso else ""
    form = (f'<form method="post" action="/login">{csrf_field(session)}'
            '<p><label>Username <input name="username" autocomplete="username" required></label></p>'
            '<p><label>Password <input name="password" type="password" autocomplete="current-password" '
            'required></label></p><p><button type="submit">Log in</button></p></form>') if password else ""
    return layout("Log in", f"<h1>Log in</h1>{problem}{link}{form}", None)


def signed_in() -> str:
    """After a login through the identity provider: the browser moves on to the start page from here, a
    navigation of the console's own that the Strict session cookie comes along with."""
    return layout("Logged in", '<h1>Logged in</h1><p><a href="/">Continue</a></p>', None,
                   head='<meta http-equiv="refresh" content="0; url=/">')


def pairs(items: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of names and (already escaped) values."""
    return "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{v}</td></tr>" for k, v in items) + "</table>"


def table(columns: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    return f"<table><tr>{head}</tr>" + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                                              for row in rows) + "</table>"


def link(path: str, text: Any, msn: str | None) -> str:
    query = f"?{urlencode({'msn': msn})}" if msn else ""
    return f'<a href="{e(path + query)}">{e(text)}</a>'


def agreement_path(agreement_id: str) -> str:
    return f"/agreements/{quote(agreement_id, safe='')}"


def charge_path(agreement_id: str, charge_id: str) -> str:
    return f"{agreement_path(agreement_id)}/charges/{quote(charge_id, safe='')}"


def search(session: Session, msns: tuple[str, ...], query: str = "", msn: str | None = None,
           matches: list[Match] | None = None, error: str | None = None) -> str:
    choose = ""
    if len(msns) > 1:
        options = "".join(f'<option value="{e(m)}"{" selected" if m == msn else ""}>{e(m)}</option>' for m in msns)
        choose = f'<label>Merchant <select name="msn">{options}</select></label> '
    body = ('<h1>Find</h1><form method="get" action="/search">'
            '<label>Agreement, charge, order, command or external id '
            f'<input name="q" value="{e(query)}" required maxlength="64"></label> '
            f'{choose}<button type="submit">Find</button></form>')
    if error:
        body += f'<p class="error">{e(error)}</p>'
    elif matches is not None and not matches:
        body += f"<p>Nothing found for {e(query)}.</p>"
    elif matches:
        body += table(("kind", "id", "status", "agreement"), (_match(m, msn) for m in matches))
    return layout("Find", body, session)


def _match(m: Match, msn: str | None) -> list[str]:
    target = (charge_path(m.agreement_id, m.charge_id) if m.agreement_id and m.charge_id
              else agreement_path(m.agreement_id) if m.agreement_id else None)
    shown = link(target, m.id, msn) if target else e(m.id)
    agreement = link(agreement_path(m.agreement_id), m.agreement_id, msn) if m.agreement_id else "-"
    return [e(m.kind), shown, e(m.status), agreement]


def _fetched(at: dt.datetime) -> str:
    return f'<p class="muted">Fetched from Vipps at {e(at.strftime("%Y-%m-%d %H:%M:%S UTC"))}.</p>'


def timeline(events: list[dict[str, Any]]) -> str:
    if not events:
        return '<p class="muted">No events recorded (kept for LEDGER_RETENTION_DAYS).</p>'
    rows = []
    for event in events:
        transition = event.get("transition") or {}
        problem = event.get("problem") or {}
        change = (f"{transition.get('from') or '-'} → {transition.get('to')}" if transition
                  else str(problem.get("type") or problem.get("reason") or ""))
        audit = event.get("audit") or {}
        who = " / ".join(str(audit[k]) for k in ("operator", "reason") if audit.get(k))
        rows.append([e(str(event.get("occurred_at") or "")[:19].replace("T", " ")), e(event.get("type")), e(change),
                     e(event.get("command_id") or "(seen by polling)"), e(who)])
    return table(("when", "event", "change", "command", "who / why"), rows)


def agreement(session: Session, view: AgreementView, msn: str | None) -> str:
    a = view.agreement
    amount = getattr(a.pricing, "amount", None) if a.pricing else None
    rows = [("status", e(a.status)), ("product", e(a.productName)),
            ("price", e(money(amount)) if amount is not None else "-"),
            ("pricing", e(getattr(a.pricing, "type", None))),
            ("interval", e(f"every {a.interval.count} {a.interval.unit}") if a.interval else "-"),
            ("campaign", e(getattr(a.campaign, "type", None))),
            ("created", e(a.created)), ("external id", e(a.externalId))]
    if str(a.status) == "PENDING":
        rows.append(("confirmation URL", e(confirmation_url(view.timeline))))
    charges = [[link(charge_path(a.id, c.id), c.id, msn), e(c.type), e(c.status), e(money(c.amount)),
                e(str(c.due)[:10] if c.due else None), e(money(c.summary.captured)), e(money(c.summary.refunded))]
               for c in view.charges]
    act = ""
    if session.may(Role.agent) and str(a.status) not in models.FINAL_AGREEMENT_STATUSES:
        act = _act([action_form(session, "stop", f"{agreement_path(a.id)}/stop", "Stop agreement…", msn,
                                note="Irreversible: Vipps cancels the agreement's reserved charges.")])
    body = (f"<h1>Agreement {e(a.id)}</h1>{_fetched(view.fetched_at)}{pairs(rows)}{act}<h2>Charges</h2>"
            + (table(("charge", "type", "status", "amount", "due", "captured", "refunded"), charges) if charges
               else "<p>No charges.</p>") + f"<h2>Timeline</h2>{timeline(view.timeline)}")
    return layout(f"Agreement {a.id}", body, session)


def charge(session: Session, view: ChargeView, msn: str | None) -> str:
    c = view.charge
    currency = str(c.currency)
    rows = [("agreement", link(agreement_path(view.agreement_id), view.agreement_id, msn)),
            ("status", e(c.status)), ("type", e(c.type)), ("amount", e(money(c.amount, currency))),
            ("captured", e(money(c.summary.captured, currency))), ("refunded", e(money(c.summary.refunded, currency))),
            ("cancelled", e(money(c.summary.cancelled, currency))),
            ("left to capture", e(money(view.left_to_capture, currency))),
            ("left to refund", e(money(view.left_to_refund, currency))),
            ("failure reason", e(failure_in_words(c.failureReason))), ("due", e(str(c.due)[:10] if c.due else None)),
            ("description", e(c.description)), ("external id", e(c.externalId))]
    history = [[e(h.occurred), e(getattr(h.event, "value", h.event)), e(money(h.amount)), "yes" if h.success else "no",
                e(h.idempotencyKey)] for h in c.history]
    body = (f"<h1>Charge {e(c.id)}</h1>{_fetched(view.fetched_at)}{pairs(rows)}{_charge_actions(session, view, msn)}"
            "<h2>History at Vipps</h2>"
            + table(("when", "event", "amount", "success", "idempotency key"), history)
            + f"<h2>Timeline</h2>{timeline(view.timeline)}")
    return layout(f"Charge {c.id}", body, session)


def action_form(session: Session, form_id: str, path: str, button: str, msn: str | None, amount: str | None = None,
                note: str = "") -> str:
    """A support action's first step: reason (and amount in kroner, blank for all ``amount``); it leads to the
    confirmation page, which sends nothing until confirmed."""
    hidden = csrf_field(session) + (f'<input type="hidden" name="msn" value="{e(msn)}">' if msn else "")
    money_input = (f'<label>Amount in kroner <input name="amount" inputmode="decimal" size="10" '
                   f'placeholder="{e(amount)}"></label> ' if amount is not None else "")
    hint = f'<p class="muted">{e(note)}</p>' if note else ""
    return (f'<form id="{e(form_id)}" method="post" action="{e(path)}">{hidden}<p>{money_input}'
            '<label>Reason <input name="reason" required maxlength="500" size="40"></label> '
            f'<button type="submit">{e(button)}</button></p>{hint}</form>')


def _act(forms: list[str]) -> str:
    return f'<section class="act"><h2>Act</h2>{"".join(forms)}</section>' if forms else ""


def _charge_actions(session: Session, view: ChargeView, msn: str | None) -> str:
    if not session.may(Role.agent):
        return ""
    c, path = view.charge, charge_path(view.agreement_id, view.charge.id)
    moves, currency, forms = possible_moves(c), str(c.currency), []
    if "capture" in moves:
        forms.append(action_form(session, "capture", f"{path}/capture", "Capture…", msn,
                                 f"all {money(view.left_to_capture, currency)} left"))
    if "refund" in moves:
        forms.append(action_form(session, "refund", f"{path}/refund", "Refund…", msn,
                                 f"all {money(view.left_to_refund, currency)} left"))
    if "cancel" in moves:
        forms.append(action_form(session, "cancel", f"{path}/cancel", "Cancel charge…", msn))
    return _act(forms)


def _problem_line(problem: dict[str, Any]) -> str:
    parts = [str(problem.get("detail") or problem.get("title") or problem.get("reason") or "no reason recorded")]
    parts += [f"[{problem['type']}]"] if problem.get("type") else []
    parts += [f"(Vipps contextId {problem['context_id']})"] if problem.get("context_id") else []
    return " ".join(parts)


def outcome_line(found: dict[str, Any]) -> tuple[str, str]:
    """The command's outcome in words, and its CSS class: succeeded, failed (with the problem) or in progress."""
    status = str(found.get("status"))
    if status == "succeeded":
        return "succeeded", "ok"
    if status not in TERMINAL:
        return f"in progress ({status.replace('_', ' ')}, {found.get('attempts') or 0} attempt(s) so far)", "muted"
    return f"failed ({status.replace('_', ' ')}): {_problem_line(found.get('error') or {})}", "error"


def command(session: Session, found: dict[str, Any], msn: str | None) -> str:
    """What the worker did with a command (``worker.core.commands.lookup``); reloads itself while in progress."""
    text, kind = outcome_line(found)
    events = [*found.get("events", []), *found.get("later", [])]
    named = next((x for x in events if x.get("agreement_id")), found.get("command") or {})
    agreement_id, charge_id = named.get("agreement_id"), named.get("charge_id")
    target = (link(charge_path(agreement_id, charge_id), charge_id, msn) if agreement_id and charge_id else "-")
    letter = found.get("dead_letter")
    items = [("type", e(found.get("type"))), ("status", e(found.get("status"))), ("attempts", e(found.get("attempts"))),
             ("agreement", link(agreement_path(agreement_id), agreement_id, msn) if agreement_id else "-"),
             ("charge", target), ("operator", e(found.get("operator"))), ("reason", e(found.get("reason"))),
             ("finished", e(found.get("finished"))),
             ("dead letter", (link(f"/dead-letters/{quote(letter, safe='')}", letter, None)
                              if letter and session.may(Role.operator) else e(letter)))]
    body = (f'<h1>Command {e(found.get("command_id"))}</h1><p id="outcome" class="{kind}">{e(text)}</p>'
            + pairs(items) + "<h2>Events</h2>" + timeline(events))
    return layout(f"Command {found.get('command_id')}", body, session, refresh=2 if kind == "muted" else None)


def problem(session: Session | None, title: str, text: str) -> str:
    return layout(title, f'<h1>{e(title)}</h1><p class="error">{e(text)}</p><p><a href="/">Find</a></p>', session)
