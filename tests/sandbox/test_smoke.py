from __future__ import annotations


def test_cards_endpoint_serves_the_ground_truth_live_cards(kaiten_sandbox, api):
    truth = kaiten_sandbox.truth()
    live = {c["id"] for c in truth["cards"] if c["condition"] == 1}
    seen: set[int] = set()
    offset = 0
    while True:
        page = api.get(f"{kaiten_sandbox.api_url}/cards", params={"offset": offset}).json()
        seen.update(c["id"] for c in page)
        if len(page) < 100:
            break
        offset += 100
    assert seen == live
