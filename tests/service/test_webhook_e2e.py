"""The real pipeline behind the service.

First load from /admin/sync in Chromium, then the webhook path: sandbox change ->
webhook -> debounced `meltano run kaiten-sync` -> kaiten.cards.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg
import pytest
from kaiten_webhooks import SandboxWebhooks
from psycopg.rows import dict_row
from service_harness import service_env, start_service

from kaiten_local.project import scratch_project

MELTANO = Path(sys.executable).with_name("meltano")
# A real sync (tap + loader + dbt build) of a small workspace: generous guards, not targets.
RUN_TIMEOUT_SECONDS = 600


def meltano_project(root: Path) -> Path:
    """A throw-away copy of the project sharing the repo's installed plugin venvs.

    Keeps a developer's .env, systemdb and state out of the test.
    """
    if not MELTANO.exists():
        pytest.fail("Meltano is not installed: run make install")
    return scratch_project(root)


@pytest.fixture
def pipeline_service(kaiten_sandbox_factory, fresh_database_url, tmp_path, webhook_secret):
    sandbox = kaiten_sandbox_factory(seed=11, cards=150, rate_limit=0)
    project = meltano_project(tmp_path / "project")
    env = service_env(
        fresh_database_url, project, webhook_secret, KAITEN_SERVICE_DEBOUNCE_SECONDS="1"
    )
    # The real commands (`meltano run kaiten-sync`, `... --full-refresh kaiten-full-sync`).
    del env["KAITEN_SERVICE_SYNC_COMMAND"], env["KAITEN_SERVICE_FULL_SYNC_COMMAND"]
    for name in list(env):
        if name.startswith(("MELTANO_", "TAP_KAITEN", "TARGET_POSTGRES", "DBT_", "PG")):
            del env[name]
    env.update(
        KAITEN_API_URL=sandbox.base_url,
        KAITEN_API_TOKEN=sandbox.token,
        TAP_KAITEN_REQUESTS_PER_SECOND="1000",  # the sandbox is local and unthrottled
        DBT_LOG_PATH=str(project / ".meltano" / "dbt-logs"),
    )
    service = start_service(env, tmp_path / "service.log", fresh_database_url)
    yield service, sandbox
    service.stop()


def cards_in_db(database_url: str, ids: list[int]) -> dict[int, dict]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "select id, title, version, column_id, condition, updated"
            " from kaiten.cards where id = any(%s)",
            [ids],
        ).fetchall()
    return {row["id"]: row for row in rows}


def assert_run_succeeded(run, service):
    assert run["outcome"] == "success", f"{run}\n--- service log (tail)\n{service.log()[-4000:]}"


def test_a_card_changed_in_kaiten_reaches_postgres_through_the_webhook_path(
    pipeline_service, browser_page, tmp_path
):
    service, sandbox = pipeline_service
    # First load as a user does it: "Полная синхронизация" on /admin/sync, real pipeline.
    page = browser_page
    expect = pytest.importorskip("playwright.sync_api").expect
    page.goto(service.url("/admin/sync"))
    page.fill("#secret", service.secret)
    page.click("#login button[type=submit]")
    page.get_by_role("button", name="Полная синхронизация").click()
    expect(page.locator("body")).to_have_attribute("data-state", "running")
    finished = page.locator("#runs tbody tr:not([data-outcome=running])")
    expect(finished).to_have_count(1, timeout=RUN_TIMEOUT_SECONDS * 1000)
    page.screenshot(path=tmp_path / "admin-sync-full-sync.png", full_page=True)
    [full] = service.status()["runs"]
    assert_run_succeeded(full, service)
    assert full["kind"] == "full"
    expect(finished).to_have_attribute("data-outcome", "success")
    truth = {card["id"]: card for card in sandbox.truth("cards")["cards"]}
    assert full["records"]["cards"] == len(truth)
    expect(finished.locator("td").nth(5)).to_contain_text(f"cards: {len(truth)}")
    # The page shows the bookmarks the run left in kaiten.sync_metadata.
    expect(page.locator("#bookmarks tbody")).to_contain_text("cards")
    with psycopg.connect(service.database_url) as conn:
        assert conn.execute("select count(*) from kaiten.cards").fetchone()[0] == len(truth)

    webhooks = SandboxWebhooks(sandbox, service.webhook_url())
    changed = webhooks.mutate(update=3, move=2, archive=1, create=1)
    changed_ids = sorted({card_id for ids in changed.values() for card_id in ids})
    assert len(changed_ids) >= 5
    before = cards_in_db(service.database_url, changed_ids)

    status = service.wait_until(
        lambda s: len(s["runs"]) == 2 and s["current_run"] is None, RUN_TIMEOUT_SECONDS
    )
    incremental = status["runs"][0]
    assert_run_succeeded(incremental, service)
    assert incremental["trigger"] == "webhook"
    assert incremental["kind"] == "incremental"
    # Every webhook the sandbox sent went into this one debounced run.
    assert webhooks.sent >= len(changed_ids)
    assert incremental["webhook_events"] == webhooks.sent

    truth = {card["id"]: card for card in sandbox.truth("cards")["cards"]}
    after = cards_in_db(service.database_url, changed_ids)
    for card_id in changed_ids:
        expected = truth[card_id]
        row = after[card_id]
        assert (row["title"], row["version"], row["column_id"], row["condition"]) == (
            expected["title"],
            expected["version"],
            expected["column_id"],
            expected["condition"],
        ), f"card {card_id}"
    # The webhook path changed what was stale: at least one of them really differed before.
    assert any(before.get(i) != after[i] for i in changed_ids)
    # Incremental: it read the changed cards, not the whole workspace again.
    assert incremental["records"]["cards"] < len(truth)
