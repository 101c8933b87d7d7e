"""The console's ASGI app: login (built-in users here, OpenID Connect in ``oidc``), the session and CSRF checks,
security headers, and the find/see pages."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.console import oidc, pages
from worker.console.acting import Acting
from worker.console.deadletters import DeadLetterPages
from worker.console.finder import Finder, LookupFailed
from worker.console.metrics import ConsoleMetrics
from worker.console.sessions import Session, Signer, anonymous, new_session
from worker.console.settings import ConsoleSettings
from worker.console.users import Role, Users
from worker.store.clock import now_ms
from worker.store.logins import FailedLogins
from worker.store.revocations import Revocations

log = logging.getLogger("worker.console")

HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
MAX_FORM_BYTES = 8192


def security_headers(app: ASGIApp, hsts: bool) -> ASGIApp:
    """Every response gets the security headers (HSTS too when the console is served over https)."""
    extra = [(k.encode(), v.encode()) for k, v in HEADERS.items()]
    if hsts:
        extra.append((b"strict-transport-security", b"max-age=31536000"))

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await app(scope, receive, sending if scope["type"] == "http" else send)

    return wrapped


@dataclass
class Console:
    settings: ConsoleSettings
    users: Users
    finder: Finder
    metrics: ConsoleMetrics = field(default_factory=ConsoleMetrics)

    def __post_init__(self) -> None:
        self.signer = Signer(self.settings.session_secret)
        self.cookie = "__Host-console" if self.settings.console_cookie_secure else "console"
        ops = self.finder.ops
        self.revocations = Revocations(ops.redis, ops.keys, session_seconds=self.settings.console_session_minutes * 60)
        # Counted in Redis, so every console replica sees the same attempts.
        self.limiter = FailedLogins(ops.redis, ops.keys, limit=self.settings.console_login_attempts,
                                    window_seconds=self.settings.console_login_window_seconds)

    def session(self, request: Request) -> Session | None:
        """The request's session: its cookie is ours and unexpired, and (logged in) it was not revoked."""
        session = self.signer.load(request.cookies.get(self.cookie))
        if session is None or not session.logged_in:
            return session
        allowed = self.revocations.allows(session.sid, str(session.user), int(session.issued * 1000))
        return session if allowed else None

    def with_session(self, response: Response, session: Session) -> Response:
        response.set_cookie(self.cookie, self.signer.dump(session), max_age=int(self.settings.console_session_minutes
                                                                                * 60), path="/", httponly=True,
                            secure=self.settings.console_cookie_secure, samesite="strict")
        return response

    async def form(self, request: Request, session: Session | None) -> dict[str, str] | None:
        """The posted form when its CSRF token is the session's; else None."""
        body = await request.body()
        if session is None or len(body) > MAX_FORM_BYTES:
            return None
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        return fields if hmac.compare_digest(fields.get("csrf", "").encode(), session.csrf.encode()) else None

    def login_page(self, session: Session, error: str | None = None) -> str:
        """The login page with the ways to log in that are configured."""
        provider = self.settings.oidc
        return pages.login(session, error, password=self.settings.console_users_file is not None,
                           sso=provider.name if provider else None)


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status)


def _to_login() -> Response:
    return RedirectResponse("/login", status_code=303)


Page = Callable[[Request, Session], Response]
FormPage = Callable[[Request, Session, dict[str, str]], Response]


class Pages:
    """The endpoints; each page but login's needs a logged-in session whose role may see it."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def guarded(self, view: Page, role: Role = Role.viewer) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            session = self.console.session(request)
            if session is None or not session.logged_in:
                return _to_login()
            if not session.may(role):
                return _html(pages.problem(session, "Not allowed", "Your role may not see this page."), 403)
            try:
                return view(request, session)
            except LookupFailed as exc:
                return _html(pages.problem(session, "Could not look this up", str(exc)), 502)
        return endpoint

    def posted(self, view: FormPage, role: Role) -> Callable[[Request], Awaitable[Response]]:
        """A form's endpoint: a logged-in session whose role may do it, and the session's CSRF token; the view
        (which talks to Vipps and waits for the worker) runs in the thread pool."""
        async def endpoint(request: Request) -> Response:
            session = self.console.session(request)
            if session is None or not session.logged_in:
                return _to_login()
            if not session.may(role):
                log.warning("console: %s (%s) may not post to %s", session.user, session.role, request.url.path)
                return _html(pages.problem(session, "Not allowed", "Your role may not do this."), 403)
            form = await self.console.form(request, session)
            if form is None:
                return _html(pages.problem(session, "Refused", "The form has expired or lost its token; load the "
                                           "page again."), 403)
            try:
                return await run_in_threadpool(view, request, session, form)
            except LookupFailed as exc:
                return _html(pages.problem(session, "Could not look this up", str(exc)), 502)
        return endpoint

    async def login_form(self, request: Request) -> Response:
        session = self.console.session(request)
        if session is not None and session.logged_in:
            return RedirectResponse("/", status_code=303)
        fresh = anonymous()
        return self.console.with_session(_html(self.console.login_page(fresh)), fresh)

    async def login(self, request: Request) -> Response:
        console = self.console
        session = console.session(request)
        form = await console.form(request, session)
        if form is None or session is None:
            return _html(pages.problem(None, "Refused", "The form has expired; load the login page again."), 403)
        if console.settings.console_users_file is None:
            return _html(pages.problem(None, "Refused", "Log in through the identity provider."), 403)
        username = form.get("username", "")[:64]
        client = request.client.host if request.client else "unknown"
        keys = (f"user:{username}", f"client:{client}")
        if console.limiter.blocked(*keys):
            log.warning("console login refused: too many attempts (user %r, client %s)", username, client)
            console.metrics.login("password", "rate_limited")
            return _html(console.login_page(session, "Too many attempts; try again later."), 429)
        user = console.users.check(username, form.get("password", ""))
        if user is None:
            console.limiter.failed(*keys)
            log.info("console login failed (user %r, client %s)", username, client)
            console.metrics.login("password", "failure")
            return _html(console.login_page(session, "Wrong username or password."), 401)
        log.info("console login: %s (%s)", user.username, user.role.name)
        console.metrics.login("password", "success")
        fresh = new_session(console.settings.console_session_minutes * 60, user.username, user.role)
        return console.with_session(RedirectResponse("/", status_code=303), fresh)

    async def logout(self, request: Request) -> Response:
        session = self.console.session(request)
        if await self.console.form(request, session) is None:
            return _html(pages.problem(None, "Refused", "The form has expired; load the page again."), 403)
        if session is not None and session.logged_in:  # a copy of the cookie is refused from now on too
            self.console.revocations.end_session(session.sid, int(session.expires * 1000), now_ms())
            log.info("console logout: %s", session.user)
        response = _to_login()
        response.delete_cookie(self.console.cookie, path="/", secure=self.console.settings.console_cookie_secure,
                               httponly=True, samesite="strict")
        return response

    def home(self, request: Request, session: Session) -> Response:
        return _html(pages.search(session, self.console.finder.ops.merchants.msns))

    def search(self, request: Request, session: Session) -> Response:
        query, msn = request.query_params.get("q", ""), request.query_params.get("msn") or None
        msns = self.console.finder.ops.merchants.msns
        try:
            found = self.console.finder.search(query, msn)
        except LookupFailed as exc:
            return _html(pages.search(session, msns, query, msn, error=str(exc)), 400)
        return _html(pages.search(session, msns, query, msn, found))

    def agreement(self, request: Request, session: Session) -> Response:
        msn = request.query_params.get("msn") or None
        view = self.console.finder.agreement(request.path_params["agreement_id"], msn)
        return _html(pages.agreement(session, view, msn))

    def charge(self, request: Request, session: Session) -> Response:
        msn = request.query_params.get("msn") or None
        p = request.path_params
        return _html(pages.charge(session, self.console.finder.charge(p["agreement_id"], p["charge_id"], msn), msn))

    async def style(self, request: Request) -> Response:
        return Response(pages.style(), media_type="text/css")


def build(console: Console) -> ASGIApp:
    p, acting, letters = Pages(console), Acting(console), DeadLetterPages(console)
    app = Starlette(routes=[
        Route("/login", p.login_form, methods=["GET"]), Route("/login", p.login, methods=["POST"]),
        Route("/logout", p.logout, methods=["POST"]), Route("/static/console.css", p.style, methods=["GET"]),
        Route("/", p.guarded(p.home), methods=["GET"]), Route("/search", p.guarded(p.search), methods=["GET"]),
        Route("/agreements/{agreement_id}", p.guarded(p.agreement), methods=["GET"]),
        Route("/agreements/{agreement_id}/charges/{charge_id}", p.guarded(p.charge), methods=["GET"]),
        Route("/commands/{command_id}", p.guarded(acting.command), methods=["GET"]),
        Route("/agreements/{agreement_id}/stop", p.posted(acting.stop, Role.agent), methods=["POST"]),
        Route("/agreements/{agreement_id}/charges/{charge_id}/{verb:str}", p.posted(acting.move, Role.agent),
              methods=["POST"]),
        Route("/dead-letters", p.guarded(letters.index, Role.operator), methods=["GET"]),
        Route("/dead-letters/{letter_id}", p.guarded(letters.show, Role.operator), methods=["GET"]),
        Route("/dead-letters/{letter_id}/dry-run", p.posted(letters.dry_run, Role.operator), methods=["POST"]),
        Route("/dead-letters/{letter_id}/replay", p.posted(letters.replay, Role.operator), methods=["POST"]),
        *oidc.routes(console),
    ])
    return security_headers(app, hsts=console.settings.console_cookie_secure)
