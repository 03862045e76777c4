"""The admin pages in a real browser (Debian's chromium driven by Playwright): an operator
logs in, finds a delivery that died because the helpdesk refused our token, reads why, and
once the token is fixed presses Retry and sees the ticket made. And the overview, shot at a
desktop and a phone width (into the test's output folder, and into BRIDGE_SCREENSHOTS_DIR
when it is set: that is how docs/screenshots/ is made)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.provider import FakeProvider

from .conftest import ADMIN_TOKEN, Admin, start_admin
from .history import seed_history

CHROMIUM = Path("/usr/bin/chromium")

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; "
        ".ci/run does) to run the browser tests",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, helpdesk: FakeProvider) -> Iterator[Admin]:
    """A server whose store already holds three hours of traffic."""
    root = tmp_path_factory.mktemp("browser")
    seed_history(f"sqlite:///{root / 'bridge.db'}", now=time.time())
    yield from start_admin(root, helpdesk, token=ADMIN_TOKEN)


def logged_in(browser: Browser, site: Admin, *, width: int = 1280, height: int = 800) -> Page:
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{site.url}/admin/")
    expect(page).to_have_url(f"{site.url}/admin/login")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{site.url}/admin/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return page


def test_a_wrong_token_is_refused_in_the_browser(browser: Browser, site: Admin) -> None:
    page = browser.new_page()
    page.goto(f"{site.url}/admin/login")
    page.get_by_label("Admin token").fill("not-it")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("That is not the admin token.")
    page.close()


def test_a_dead_delivery_is_found_understood_and_retried(browser: Browser, site: Admin) -> None:
    helpdesk = site.helpdesk
    # the helpdesk refuses the token we send (a permanent error: the delivery dies at once)
    helpdesk.answer_next(422, {"message": "invalid token for this account"})
    event_id = site.post_event(
        {"kind": "order", "order": "W-42", "email": "ana@example.com", "note": "where is it?"}
    )
    assert site.settled(event_id)["status"] == "failed"
    calls = len(helpdesk.requests)

    page = logged_in(browser, site)
    # the overview points at the dead letters of the helpdesk
    page.get_by_role("link", name="helpdesk").click()
    expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    row = page.locator("tr", has_text=event_id)
    expect(row).to_contain_text("HTTP 422: invalid token for this account")

    # open it: the event's page says which rule matched and why the delivery died
    row.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(rf"/admin/events/{event_id}#dlv_\w+$"))
    expect(page.locator(".delivery")).to_contain_text(
        "dead: HTTP 422: invalid token for this account"
    )
    expect(page.locator("#trace ~ table")).to_contain_text("order-ticket")

    # the token is fixed (the helpdesk accepts us again); back to the list, Retry
    helpdesk.script.clear()
    page.get_by_role("link", name="Dead letters").click()
    page.locator("tr", has_text=event_id).get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text("is queued again")
    page.get_by_role("link", name="Follow it on its event's page").click()

    # reload until the delivery shows done (bounded)
    deadline = time.monotonic() + 15
    while "done" not in (page.locator(".delivery .badge").first.text_content() or ""):
        assert time.monotonic() < deadline, "the retried delivery did not get done"
        time.sleep(0.2)
        page.reload()
    expect(page.locator(".delivery")).to_contain_text("delivered")
    expect(page.locator(".delivery")).to_contain_text("ticket_id=T-")
    assert len(helpdesk.requests) == calls + 1
    page.close()


def test_screenshots_of_the_overview(browser: Browser, site: Admin, tmp_path: Path) -> None:
    # something in every part of the page: a dead letter and a paused provider
    site.helpdesk.answer_next(422, {"message": "invalid token for this account"})
    site.settled(
        site.post_event({"kind": "order", "order": "Z-9", "email": "z@example.com", "note": "hi"})
    )
    targets = [tmp_path]
    if os.environ.get("BRIDGE_SCREENSHOTS_DIR"):
        targets.append(Path(os.environ["BRIDGE_SCREENSHOTS_DIR"]))
    page = logged_in(browser, site)
    page.get_by_role("link", name="Providers").click()
    page.locator("tr", has_text="helpdesk").get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_contain_text("Provider helpdesk is paused.")
    page.close()

    for name, width, height in (("desktop", 1280, 800), ("phone", 390, 844)):
        page = logged_in(browser, site, width=width, height=height)
        expect(page.locator("#held ~ table")).to_contain_text("helpdesk")
        # one column on a phone: nothing wider than the screen
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        for folder in targets:
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / f"overview-{name}.png"))
        page.close()
    resumed = httpx.post(
        f"{site.url}/admin/api/providers/helpdesk/resume",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert resumed.json()["resumed"] is True
    for folder in targets:
        assert (folder / "overview-desktop.png").stat().st_size > 10_000
        assert (folder / "overview-phone.png").stat().st_size > 10_000


def test_every_page_fits_a_phone_screen(browser: Browser, site: Admin) -> None:
    event_id = site.post_event({"kind": "note", "order": "P-" + "x" * 300})
    site.settled(event_id)
    page = logged_in(browser, site, width=390, height=844)
    for path in ["/admin/", "/admin/events", f"/admin/events/{event_id}", "/admin/dead"]:
        page.goto(f"{site.url}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
    page.goto(f"{site.url}/admin/providers")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.close()
