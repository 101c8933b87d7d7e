"""The support console in headless Chromium: people of each role log in through the form, find, look and act,
against `vipps-billing console serve`, a running worker, the simulator and real Redis.

Chromium is Debian's (installed by tests/e2e/chromium.py when missing), driven by Playwright; one browser for
the module, a context per user. With ``CONSOLE_SCREENSHOTS=1`` the agreement, charge and dead-letter pages
are saved to tests/e2e/screenshots/ (the README shows them); otherwise they are only opened and checked.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.e2e.chromium import ChromiumMissing, ensure_chromium
from tests.e2e.console_stack import (
    DEAD_COMMAND_ID,
    EXTERNAL_ID,
    FAST_RETRIES,
    USERS,
    ConsoleServer,
    Seeded,
    charge_at_vipps,
    password,
    seed,
    write_users,
)
from tests.stack import Simulator, Worker
from worker.core.control import Control
from worker.store.settings import StoreSettings
from worker.vipps import load_settings
from worker.vipps.merchants import load_merchants

# The first test may install Chromium (apt) before it starts.
pytestmark = pytest.mark.timeout(600)

SCREENSHOTS = Path(__file__).parent / "screenshots"
REASON = "customer complained"
# How long one browser action or expectation may wait; a page here answers in well under a second.
ACTION_MS = 10_000
OUTCOME_SECONDS = 30


@dataclass(frozen=True)
class Stack:
    url: str
    seeded: Seeded
    ops: Control
    simulator: Simulator

    def charge_path(self, charge_id: str) -> str:
        return f"/agreements/{self.seeded.agreement_id}/charges/{charge_id}"

    def refunded(self, charge_id: str) -> int:
        """What Vipps holds as refunded of the charge, in øre."""
        return int(charge_at_vipps(self.simulator, self.seeded.agreement_id, charge_id)["summary"]["refunded"])


@pytest.fixture(scope="session")
def chromium() -> Path:
    try:
        return ensure_chromium()
    except ChromiumMissing as exc:
        pytest.fail(f"the browser tests need Debian's Chromium: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    redis.Redis.from_url(redis_url).flushdb()
    simulator = Simulator()
    worker = Worker(redis_url, simulator.url, env=FAST_RETRIES)
    ops = Control(redis_url, StoreSettings(), load_merchants(load_settings(base_url=simulator.url)))
    console: ConsoleServer | None = None
    try:
        seeded = seed(ops, simulator)
        console = ConsoleServer(redis_url, simulator.url, write_users(tmp_path_factory.mktemp("console") /
                                                                      "users.json"))
        yield Stack(console.url, seeded, ops, simulator)
    finally:
        if console is not None:
            console.stop()
            print(console.output()[-10000:])  # shown by pytest when a test failed
        ops.close()
        worker.stop()
        simulator.stop()
        print(worker.output()[-10000:])
        redis.Redis.from_url(redis_url).flushdb()


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def new_page(browser: Browser, stack: Stack) -> Iterator[Callable[[], Page]]:
    """A page in a context of its own (its own cookies: one person), closed after the test."""
    contexts: list[BrowserContext] = []

    def opened() -> Page:
        context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(ACTION_MS)
        contexts.append(context)
        return context.new_page()

    yield opened
    for context in contexts:
        context.close()


def log_in(page: Page, username: str) -> Page:
    """Through the login form, as a person does; lands on the search page."""
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password(username))
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("header")).to_contain_text(f"{username} ({USERS[username]})")
    return page


@pytest.fixture
def open_as(new_page: Callable[[], Page]) -> Callable[[str], Page]:
    return lambda username: log_in(new_page(), username)


def search(page: Page, text: str) -> None:
    page.goto("/")
    page.locator('form[action="/search"] input[name="q"]').fill(text)
    page.locator('form[action="/search"]').get_by_role("button").click()
    expect(page).to_have_url(re.compile(r"/search\?"))


def screenshot(page: Page, name: str) -> None:
    """The whole page as tests/e2e/screenshots/<name>, only when asked: a plain test run changes no file."""
    if os.environ.get("CONSOLE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def cell(page: Page, heading: str) -> str:
    """The value beside ``heading`` in the page's first table, its fields (status, refunded, ...)."""
    fields = page.locator("main table").first
    return fields.locator("tr", has=page.locator("th", has_text=re.compile(f"^{heading}$"))).locator("td") \
        .inner_text()


def settled_outcome(page: Page) -> str:
    """The command page's outcome, reloaded until it is no longer in progress (bounded)."""
    deadline = time.monotonic() + OUTCOME_SECONDS
    while True:
        outcome = page.locator("#outcome").inner_text().strip()
        if not outcome.startswith("in progress"):
            return outcome
        assert time.monotonic() < deadline, f"still {outcome!r} after {OUTCOME_SECONDS} s"
        page.wait_for_timeout(300)
        page.reload()


def submit_refused(page: Page, form: str) -> None:
    """Submits ``form`` and expects the console to refuse it: 403."""
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.locator(form).locator('[type="submit"]').click()
    assert answer.value.status == 403, f"{form} answered {answer.value.status}"


def test_an_agent_refunds_part_of_a_charge_found_by_its_external_id(stack: Stack, new_page: Callable[[], Page]) -> None:
    s = stack.seeded
    before = stack.refunded(s.charged_id)
    page = log_in(new_page(), "alice")
    search(page, EXTERNAL_ID)
    link = page.locator(f'a[href^="/agreements/{s.agreement_id}"]')
    found = page.locator("main table tr").filter(
        has=page.locator("td:first-child", has_text=re.compile(r"^agreement$"))).filter(has=link)
    expect(found).to_have_count(1)  # the row of kind "agreement", whatever else the id names
    found.locator(link).first.click()
    expect(page.locator("h1")).to_have_text(f"Agreement {s.agreement_id}")
    expect(page.locator("form#stop")).to_have_count(1)
    page.locator(f'a[href^="{stack.charge_path(s.charged_id)}"]').click()
    expect(page.locator("h1")).to_have_text(f"Charge {s.charged_id}")

    refund = page.locator("form#refund")
    refund.locator('[name="amount"]').fill("10,50")
    refund.locator('[name="reason"]').fill(REASON)
    refund.locator('[type="submit"]').click()
    expect(page.locator("h1")).to_contain_text("Confirm")
    for shown in ("10.50 NOK", s.charged_id, REASON):
        expect(page.locator("main")).to_contain_text(shown)
    assert stack.refunded(s.charged_id) == before  # nothing is sent before it is confirmed

    page.locator("form#confirm").locator('[type="submit"]').click()
    expect(page).to_have_url(re.compile(r"/commands/[^/?]+"))
    expect(page.locator("h1")).to_contain_text("Command ")
    assert settled_outcome(page).startswith("succeeded")
    expect(page.locator("main")).to_contain_text("charge.refunded")

    page.goto(stack.charge_path(s.charged_id))
    assert cell(page, "refunded") == "10.50 NOK"
    entry = page.locator("tr", has_text="charge.refunded").filter(has_text="alice")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text(f"alice / {REASON}")
    assert stack.refunded(s.charged_id) == before + 1050


def test_a_viewer_finds_and_sees_an_agreement_and_its_charges_without_action_forms(
        stack: Stack, open_as: Callable[[str], Page]) -> None:
    s = stack.seeded
    page = open_as("victor")
    search(page, s.agreement_id)
    page.locator(f'main table a[href="/agreements/{s.agreement_id}"]').first.click()
    expect(page.locator("h1")).to_have_text(f"Agreement {s.agreement_id}")
    assert cell(page, "status") == "ACTIVE" and cell(page, "external id") == EXTERNAL_ID
    expect(page.locator("main form")).to_have_count(0)
    for charge_id in (s.charged_id, s.reserved_id):
        expect(page.locator(f'a[href="{stack.charge_path(charge_id)}"]')).to_have_count(1)
    # Each charge page straight from its link's address: going back would fetch the agreement again.
    for charge_id, status in ((s.charged_id, "CHARGED"), (s.reserved_id, "RESERVED")):
        page.goto(stack.charge_path(charge_id))
        expect(page.locator("h1")).to_have_text(f"Charge {charge_id}")
        assert cell(page, "status") in (status, "PARTIALLY_REFUNDED")  # the agent's test may have refunded
        for action in ("capture", "refund", "cancel"):
            expect(page.locator(f"form#{action}")).to_have_count(0)
        expect(page.locator("main form")).to_have_count(0)


def test_a_viewers_forged_refund_is_refused(stack: Stack, open_as: Callable[[str], Page]) -> None:
    """A valid session and CSRF token, but a viewer's: the refund URL says 403 and nothing is refunded."""
    s = stack.seeded
    before = stack.refunded(s.charged_id)
    page = open_as("victor")
    token = page.locator('input[name="csrf"]').first.get_attribute("value")
    assert token
    answer = page.request.post(f"{stack.charge_path(s.charged_id)}/refund",
                               form={"csrf": token, "amount": "1.00", "reason": "forged"}, max_redirects=0)
    assert answer.status == 403, answer.status
    assert stack.refunded(s.charged_id) == before


def test_the_login_and_logout_forms_without_their_csrf_token_are_refused(new_page: Callable[[], Page]) -> None:
    page = new_page()
    page.goto("/login")
    page.get_by_label("Username").fill("victor")
    page.get_by_label("Password").fill(password("victor"))
    page.locator('form[action="/login"] input[name="csrf"]').evaluate("input => input.remove()")
    submit_refused(page, 'form[action="/login"]')
    expect(page.locator("h1")).to_have_text("Refused")
    page.goto("/")
    expect(page.locator("h1")).to_have_text("Log in")  # not logged in

    log_in(page, "victor")
    page.locator('form[action="/logout"] input[name="csrf"]').evaluate("input => input.remove()")
    submit_refused(page, 'form[action="/logout"]')
    page.goto("/")
    expect(page.locator("header")).to_contain_text("victor (viewer)")  # still logged in


def test_an_action_form_without_its_csrf_token_is_refused(stack: Stack, open_as: Callable[[str], Page]) -> None:
    s = stack.seeded
    page = open_as("alice")
    page.goto(stack.charge_path(s.reserved_id))
    expect(page.locator("form#cancel")).to_have_count(1)
    capture = page.locator("form#capture")
    capture.locator('[name="reason"]').fill("shipped")
    capture.locator('input[name="csrf"]').evaluate("input => input.remove()")
    submit_refused(page, "form#capture")
    expect(page.locator("h1")).not_to_contain_text("Confirm")
    page.goto(stack.charge_path(s.reserved_id))
    assert cell(page, "status") == "RESERVED" and cell(page, "captured") == "0.00 NOK"


def test_the_agreement_and_charge_pages(stack: Stack, open_as: Callable[[str], Page]) -> None:
    s = stack.seeded
    page = open_as("alice")
    page.goto(f"/agreements/{s.agreement_id}")
    expect(page.locator("h1")).to_have_text(f"Agreement {s.agreement_id}")
    assert cell(page, "status") == "ACTIVE" and cell(page, "price") == "299.00 NOK"
    charges = page.locator("table", has=page.locator("th", has_text="refunded"))
    for charge_id in (s.charged_id, s.reserved_id):
        expect(charges.locator(f'a[href="{stack.charge_path(charge_id)}"]')).to_have_count(1)
    expect(page.locator("main")).to_contain_text("agreement.activated")
    screenshot(page, "agreement.png")

    page.goto(stack.charge_path(s.charged_id))
    expect(page.locator("h1")).to_have_text(f"Charge {s.charged_id}")
    assert cell(page, "amount") == "299.00 NOK" and cell(page, "captured") == "299.00 NOK"
    expect(page.locator("main")).to_contain_text("History at Vipps")
    screenshot(page, "charge.png")


def test_an_operator_sees_a_dead_letter_and_others_may_not(stack: Stack, open_as: Callable[[str], Page]) -> None:
    s = stack.seeded
    letter = stack.ops.dead_letters.get(s.dead_letter_id)
    assert letter is not None
    for username in ("victor", "alice"):
        other = open_as(username)
        for path in ("/dead-letters", f"/dead-letters/{s.dead_letter_id}"):
            answer = other.goto(path)
            assert answer is not None and answer.status == 403, (username, path)

    page = open_as("olga")
    page.goto("/dead-letters")
    page.locator(f'main a[href^="/dead-letters/{s.dead_letter_id}"]').click()
    expect(page.locator("h1")).to_have_text(f"Dead letter {s.dead_letter_id}")
    assert letter.problem is not None
    for shown in (DEAD_COMMAND_ID, letter.reason, "charge.capture", letter.problem["type"]):
        expect(page.locator("main")).to_contain_text(shown)
    for form in ("form#dry-run", "form#replay"):
        expect(page.locator(form)).to_have_count(1)
    expect(page.locator('form#replay [name="reason"]')).to_have_count(1)
    screenshot(page, "dead-letter.png")
