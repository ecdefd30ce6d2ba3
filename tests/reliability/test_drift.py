"""Drift and odd data: what Kaiten may start sending one day loads, and nothing is dropped.

The sandbox runs in this process, so the test edits its workspace directly (under its
lock) the way Kaiten's data would change, then bumps `updated` so the incremental run
reads the cards again. The truth is rendered by the same code, so the comparison stays
value by value.
"""

# ruff: noqa: RUF001  (Cyrillic text is the point of this test)
from __future__ import annotations

from reliability_kit import EL, assert_ok, assert_tables_equal_truth, query

NEW_PROPERTY = 109
LONG_TEXT = ("Очень длинное описание 🚀 с эмодзи и кириллицей. " * 4000).strip()  # ~200 KB
NUL_TEXT = "до\u0000после 🧨 и ещё \u0000"


def drift(sandbox) -> dict[str, int]:
    """Apply every kind of drift to a few cards; returns which card got what."""
    ws = sandbox.workspace
    with ws.lock:
        live = sorted(cid for cid, c in ws.cards.items() if not c.archived_flag)
        with_size = [cid for cid in live if ws.cards[cid].size is not None]
        picked = {
            "new_property": live[0],
            "typed_as_text": live[1],
            "long_text": live[2],
            "nul": live[3],
            "null_again": with_size[0],
            "new_field": live[5],
        }
        # a custom property created in Kaiten after the first sync
        ws.custom_properties[NEW_PROPERTY] = dict(
            ws.custom_properties[102], id=NEW_PROPERTY, uid="prop-109", name="Новое поле 🆕"
        )
        ws.select_values[NEW_PROPERTY] = []
        card = ws.cards[picked["new_property"]]
        card.props = dict(card.props or {}, id_109="значение нового поля")
        # a number property whose values turn into text
        card = ws.cards[picked["typed_as_text"]]
        card.props = dict(card.props or {}, id_101="5 часов")
        # very long Cyrillic + emoji title and description
        card = ws.cards[picked["long_text"]]
        card.title = LONG_TEXT[:20000]
        ws._descriptions.append(LONG_TEXT)
        card.descr = len(ws._descriptions) - 1
        # NUL in a description (PostgreSQL text can't hold it)
        ws._descriptions.append(NUL_TEXT)
        ws.cards[picked["nul"]].descr = len(ws._descriptions) - 1
        # null where a value was
        card = ws.cards[picked["null_again"]]
        card.size, card.props, card.due_date = None, None, None
        # a field Kaiten starts sending (on the cards changed from now on), and on users
        render = ws.render_card
        changed = set(picked.values())

        def render_with_new_field(c, **kwargs):
            rendered = render(c, **kwargs)
            if c.id in changed:
                rendered["sla_breach"] = {"level": 2, "since": "2026-12-01T00:00:00.000Z"}
            return rendered

        ws.render_card = render_with_new_field
        for user in ws.users.values():
            user["two_factor"] = True
        for cid in picked.values():
            ws._bump(ws.cards[cid])
        ws.generation += 1
    return picked


def test_drifted_and_odd_data_loads_without_losing_anything(
    kaiten_sandbox_factory, make_pipeline, database_url
):
    """New custom property, new fields (cards and users), a property changing type, 200 KB
    of Cyrillic and emoji, NUL characters, nulls where values were: the incremental run
    succeeds and every value is in the tables (unknown fields in `extra_fields`).

    Mutation tried (RELIABILITY_PLUGIN_ENV=TARGET_POSTGRES_SANITIZE_NULL_TEXT_CHARACTERS=false):
    the load fails on the NUL and the test fails.
    """
    sandbox = kaiten_sandbox_factory(seed=61, cards=300, rate_limit=0)
    project = make_pipeline(sandbox)
    assert_ok(project.run("run", *EL))

    picked = drift(sandbox)
    result = project.run("run", *EL)

    assert_ok(result)
    assert_tables_equal_truth(database_url, sandbox.truth())
    [(title, description)] = query(
        database_url, "select title, description from kaiten.cards where id = %s",
        (picked["long_text"],),
    )  # fmt: skip
    assert (title, description) == (LONG_TEXT[:20000], LONG_TEXT)
    [(nul_description,)] = query(
        database_url, "select description from kaiten.cards where id = %s", (picked["nul"],)
    )
    assert nul_description == NUL_TEXT.replace("\u0000", "\ufffd")
    [(props,)] = query(
        database_url, "select properties from kaiten.cards where id = %s",
        (picked["new_property"],),
    )  # fmt: skip
    assert props["id_109"] == "значение нового поля"
    [(extra,)] = query(
        database_url, "select extra_fields from kaiten.cards where id = %s", (picked["new_field"],)
    )
    assert extra == {"sla_breach": {"level": 2, "since": "2026-12-01T00:00:00.000Z"}}
    assert query(database_url, "select name from kaiten.custom_properties where id = 109") == [
        ("Новое поле 🆕",)
    ]
