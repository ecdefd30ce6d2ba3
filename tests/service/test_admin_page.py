"""/admin/sync in a real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")


def test_admin_page_full_sync_button_runs_a_full_sync_and_shows_it_finish(
    service_factory, browser_page, tmp_path
):
    service = service_factory(FAKE_SYNC_SECONDS="2")
    page = browser_page
    expect = playwright_api.expect
    requests_seen = []
    page.on("request", lambda request: requests_seen.append(request))

    page.goto(service.url("/admin/sync"))
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#panel")).to_be_hidden()

    # A wrong secret is refused and the form comes back.
    page.fill("#secret", "certainly-not-the-secret")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("Неверный ключ.")

    page.fill("#secret", service.secret)
    page.click("#login button[type=submit]")
    expect(page.locator("body")).to_have_attribute("data-state", "idle")
    expect(page.locator("#no-runs")).to_be_visible()
    expect(page.locator("#login")).to_be_hidden()

    page.get_by_role("button", name="Полная синхронизация").click()
    expect(page.locator("#message")).to_contain_text("Запущена полная синхронизация")
    # The page notices the run by itself (no reload from the test) ...
    expect(page.locator("body")).to_have_attribute("data-state", "running")
    expect(page.get_by_role("button", name="Синхронизировать")).to_be_disabled()
    # ... and refreshes itself until it is over.
    finished = page.locator("#runs tbody tr[data-outcome=success]")
    expect(finished).to_have_count(1, timeout=60_000)
    expect(page.locator("body")).to_have_attribute("data-state", "idle")
    expect(finished.locator("td").nth(2)).to_have_text("полная")
    expect(finished.locator("td").nth(3)).to_have_text("вручную")
    expect(finished.locator("td").nth(5)).to_have_text("cards: 7, users: 3")
    expect(page.get_by_role("button", name="Полная синхронизация")).to_be_enabled()
    page.screenshot(path=tmp_path / "admin-sync.png", full_page=True)

    assert (tmp_path / "admin-sync.png").stat().st_size > 10_000
    [db_run] = service.db_runs()
    assert db_run["kind"] == "full"
    assert db_run["ended_at"] is not None
    # The secret went only into Authorization headers: never a URL, never the page.
    assert service.secret not in page.url
    assert service.secret not in page.content()
    assert all(service.secret not in request.url for request in requests_seen)
    [start] = [r for r in requests_seen if r.url.endswith("/api/sync/full")]
    assert start.method == "POST"
    assert start.headers["authorization"] == f"Bearer {service.secret}"
    assert page.evaluate("sessionStorage.getItem('kaitenSyncSecret')") == service.secret


def test_admin_page_says_sync_is_disabled_without_a_secret(service_factory, browser_page):
    service = service_factory(secret=None)
    page = browser_page
    page.goto(service.url("/admin/sync"))
    expect = playwright_api.expect
    expect(page.locator("body")).to_have_attribute("data-state", "disabled")
    expect(page.locator("#disabled")).to_contain_text("KAITEN_WEBHOOK_SECRET")
    expect(page.locator("#login")).to_be_hidden()
