"""Kaiten-shaped outgoing webhooks for sandbox mutations.

Kaiten POSTs `{"event": "card:add", "data": {...card..., "author": {...}}}` and
`{"event": "card:update", "data": {"old": {...}, "changes": {...}, "author": {...}}}`
(shared/kaiten-api.md). When the sandbox can send them itself (a `webhook_url`
setting) it does; until then this sends the same bodies over real HTTP after
each mutation, so the tests need no change when the sandbox learns it.
"""

from __future__ import annotations

from typing import Any

import requests

UPDATE_KINDS = ("updated", "moved", "archived", "unarchived", "touched")


class SandboxWebhooks:
    def __init__(self, sandbox: Any, url: str) -> None:
        self.sandbox = sandbox
        self.url = url
        self.native = "webhook_url" in sandbox.config
        if self.native:
            sandbox.configure(webhook_url=url)
        self.sent: list[int] = []

    def _cards(self) -> dict[int, dict[str, Any]]:
        return {card["id"]: card for card in self.sandbox.truth("cards")["cards"]}

    def mutate(self, **counts: int) -> dict[str, list[int]]:
        """sandbox.mutate(**counts), then one webhook per changed card, as Kaiten would send."""
        before = {} if self.native else self._cards()
        changed = self.sandbox.mutate(**counts)
        if self.native:
            return changed
        after = self._cards()
        author = {"id": 1, "full_name": "Sandbox"}
        with requests.Session() as http:
            for card_id in changed.get("created", []):
                self._post(
                    http, {"event": "card:add", "data": {**after[card_id], "author": author}}
                )
            for kind in UPDATE_KINDS:
                for card_id in changed.get(kind, []):
                    old, new = before.get(card_id, {}), after.get(card_id, {})
                    changes = {k: v for k, v in new.items() if old.get(k) != v}
                    body = {
                        "event": "card:update",
                        "data": {"old": old, "changes": changes, "author": author},
                    }
                    self._post(http, body)
        return changed

    def _post(self, http: requests.Session, body: dict[str, Any]) -> None:
        response = http.post(self.url, json=body, timeout=10)
        # Kaiten does not retry: a lost webhook is lost, so the test must see it answered.
        assert response.status_code == 202, response.text
        self.sent.append(response.status_code)
