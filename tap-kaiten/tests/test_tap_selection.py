"""Field selection: deselected card fields are left out, selected ones are all emitted.

tap_kaiten.streams skips the SDK's per-record pruning walk when a stream's selection drops
nothing (issue #7); these tests pin both sides of that shortcut.
"""

from __future__ import annotations

from kaiten_tap_helpers import CollectingWriter, base_config, catalog_selecting, result_of

from tap_kaiten.tap import TapKaiten


def cards_with(config: dict, deselected: set[str]) -> list[dict]:
    catalog = catalog_selecting(config, ["cards"])
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] != "cards":
            continue
        for meta in entry["metadata"]:
            if meta["breadcrumb"][-1:] and meta["breadcrumb"][-1] in deselected:
                meta["metadata"]["selected"] = False
    writer = CollectingWriter()
    TapKaiten(config=dict(config), catalog=catalog, message_writer=writer).sync_all()
    return result_of(writer.messages).records["cards"]


def test_deselected_card_fields_are_not_emitted(kaiten_sandbox) -> None:
    config = base_config(kaiten_sandbox, include_checklists=False)
    cards = cards_with(config, {"description", "owner"})
    truth = {c["id"]: c for c in kaiten_sandbox.truth()["cards"]}
    assert truth
    assert {c["id"] for c in cards} == set(truth)
    assert not any("description" in c or "owner" in c for c in cards)
    assert all(c["title"] == truth[c["id"]]["title"] for c in cards)


def test_with_every_field_selected_nothing_is_dropped(kaiten_sandbox) -> None:
    config = base_config(kaiten_sandbox, include_checklists=False)
    cards = cards_with(config, set())
    truth = {c["id"]: c for c in kaiten_sandbox.truth()["cards"]}
    assert {c["id"] for c in cards} == set(truth)
    assert all(c["description"] == truth[c["id"]]["description"] for c in cards)
    assert all(c["owner"] == truth[c["id"]]["owner"] for c in cards)
