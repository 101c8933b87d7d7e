"""The console's pages as HTML, every value escaped where it is put in (``e``); no inline script or style,
so the Content-Security-Policy can forbid both."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from worker.console.finder import AgreementView, ChargeView, Match
from worker.console.sessions import Session
from worker.core.money import money

STYLE = """body{font-family:system-ui,sans-serif;margin:0;color:#222}
header{background:#ff5b24;color:#fff;padding:.6em 1em;display:flex;justify-content:space-between}
header a,header button{color:#fff}main{padding:1em;max-width:70em}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
.error{color:#a00}.muted{color:#666}form.inline{display:inline}
"""


def e(value: Any) -> str:
    """A value as HTML text; None as a dash."""
    return "-" if value is None else escape(str(value), quote=True)


def _layout(title: str, body: str, session: Session | None, head: str = "") -> str:
    user = ""
    if session is not None and session.logged_in:
        user = (f'<span>{e(session.user)} ({e(session.role)}) '
                f'<form class="inline" method="post" action="/logout">{csrf_field(session)}'
                '<button type="submit">Log out</button></form></span>')
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(title)} · Vipps billing support</title>{head}"
            '<link rel="stylesheet" href="/static/console.css"></head><body>'
            f'<header><a href="/">Vipps billing support</a>{user}</header><main>{body}</main></body></html>')


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
    return _layout("Log in", f"<h1>Log in</h1>{problem}{link}{form}", None)


def signed_in() -> str:
    """After a login through the identity provider: the browser moves on to the start page from here, a
    navigation of the console's own that the Strict session cookie comes along with."""
    return _layout("Logged in", '<h1>Logged in</h1><p><a href="/">Continue</a></p>', None,
                   head='<meta http-equiv="refresh" content="0; url=/">')


def _rows(rows: Iterable[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _table(columns: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    return f"<table><tr>{head}</tr>" + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                                              for row in rows) + "</table>"


def _link(path: str, text: Any, msn: str | None) -> str:
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
            f'<label>Agreement, charge, order or command id <input name="q" value="{e(query)}" required></label> '
            f'{choose}<button type="submit">Find</button></form>')
    if error:
        body += f'<p class="error">{e(error)}</p>'
    elif matches is not None and not matches:
        body += f"<p>Nothing found for {e(query)}.</p>"
    elif matches:
        body += _table(("kind", "id", "status", "agreement"), (_match(m, msn) for m in matches))
    return _layout("Find", body, session)


def _match(m: Match, msn: str | None) -> list[str]:
    target = (charge_path(m.agreement_id, m.charge_id) if m.agreement_id and m.charge_id
              else agreement_path(m.agreement_id) if m.agreement_id else None)
    shown = _link(target, m.id, msn) if target else e(m.id)
    agreement = _link(agreement_path(m.agreement_id), m.agreement_id, msn) if m.agreement_id else "-"
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
    return _table(("when", "event", "change", "command", "who / why"), rows)


def agreement(session: Session, view: AgreementView, msn: str | None) -> str:
    a = view.agreement
    amount = getattr(a.pricing, "amount", None) if a.pricing else None
    rows = [("status", e(a.status)), ("product", e(a.productName)),
            ("price", e(money(amount)) if amount is not None else "-"),
            ("pricing", e(getattr(a.pricing, "type", None))),
            ("interval", e(f"every {a.interval.count} {a.interval.unit}") if a.interval else "-"),
            ("campaign", e(getattr(a.campaign, "type", None))),
            ("created", e(a.created)), ("external id", e(a.externalId))]
    charges = [[_link(charge_path(a.id, c.id), c.id, msn), e(c.type), e(c.status), e(money(c.amount)),
                e(str(c.due)[:10] if c.due else None), e(money(c.summary.captured)), e(money(c.summary.refunded))]
               for c in view.charges]
    body = (f"<h1>Agreement {e(a.id)}</h1>{_fetched(view.fetched_at)}{_rows(rows)}<h2>Charges</h2>"
            + (_table(("charge", "type", "status", "amount", "due", "captured", "refunded"), charges) if charges
               else "<p>No charges.</p>") + f"<h2>Timeline</h2>{timeline(view.timeline)}")
    return _layout(f"Agreement {a.id}", body, session)


def charge(session: Session, view: ChargeView, msn: str | None) -> str:
    c = view.charge
    currency = str(c.currency)
    rows = [("agreement", _link(agreement_path(view.agreement_id), view.agreement_id, msn)),
            ("status", e(c.status)), ("type", e(c.type)), ("amount", e(money(c.amount, currency))),
            ("captured", e(money(c.summary.captured, currency))), ("refunded", e(money(c.summary.refunded, currency))),
            ("cancelled", e(money(c.summary.cancelled, currency))),
            ("left to capture", e(money(view.left_to_capture, currency))),
            ("left to refund", e(money(view.left_to_refund, currency))),
            ("failure reason", e(c.failureReason)), ("due", e(str(c.due)[:10] if c.due else None)),
            ("description", e(c.description)), ("external id", e(c.externalId))]
    history = [[e(h.occurred), e(getattr(h.event, "value", h.event)), e(money(h.amount)), "yes" if h.success else "no",
                e(h.idempotencyKey)] for h in c.history]
    body = (f"<h1>Charge {e(c.id)}</h1>{_fetched(view.fetched_at)}{_rows(rows)}<h2>History at Vipps</h2>"
            + _table(("when", "event", "amount", "success", "idempotency key"), history)
            + f"<h2>Timeline</h2>{timeline(view.timeline)}")
    return _layout(f"Charge {c.id}", body, session)


def problem(session: Session | None, title: str, text: str) -> str:
    return _layout(title, f'<h1>{e(title)}</h1><p class="error">{e(text)}</p><p><a href="/">Find</a></p>', session)
