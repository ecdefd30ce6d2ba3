"""The jobs and schedules of meltano.yml, dbt step included, as cron would run them."""

from __future__ import annotations

import json

from pipeline_helpers import STATE_ID, assert_ok, query


def test_schedules_point_at_the_jobs_and_nightly_is_a_full_refresh(project):
    listed = project.run("schedule", "list", "--format=json")
    assert_ok(listed)
    schedules = {s["name"]: s for s in json.loads(listed.stdout)["schedules"]["job"]}
    every_15 = schedules["kaiten-sync-every-15-minutes"]
    nightly = schedules["kaiten-full-sync-nightly"]
    assert (every_15["job"]["name"], every_15["cron_interval"]) == ("kaiten-sync", "*/15 * * * *")
    assert nightly["job"]["name"] == "kaiten-full-sync"
    assert nightly["env"] == {"MELTANO_RUN_FULL_REFRESH": "true"}
    for schedule in (every_15, nightly):
        assert schedule["job"]["tasks"] == ["tap-kaiten target-postgres dbt-postgres:build"]


def test_scheduled_jobs_load_transform_and_keep_bookmarks(project, sandbox, database_url):
    assert_ok(project.run("schedule", "run", "kaiten-sync-every-15-minutes"))
    [(marts,)] = query(
        database_url,
        "select count(*) from information_schema.tables where table_schema = 'kaiten_site'",
    )
    assert marts > 0, "the dbt-postgres:build step built nothing in kaiten_site"
    [(cards,)] = query(database_url, "select count(*) from kaiten.cards")
    assert cards == len(sandbox.truth()["cards"])

    [(before,)] = query(database_url, "select (now() at time zone 'utc')::timestamp")
    assert_ok(project.run("schedule", "run", "kaiten-full-sync-nightly"))
    # a full refresh: every card read again, not only changed ones
    [(reloaded,)] = query(
        database_url, "select count(*) from kaiten.cards where _sdc_batched_at >= %s", (before,)
    )
    assert reloaded == cards
    assert query(
        database_url, "select count(*) from kaiten.sync_metadata where state_id = %s", (STATE_ID,)
    ) == [(1,)]
