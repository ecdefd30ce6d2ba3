"""The sandbox as Kaiten's webhook sender, pointed at the service.

The sandbox POSTs Kaiten-shaped bodies (`card:add` with the card, `card:update`
with `old` + `changes`) from a background thread after each mutation, with no
retries, like Kaiten. This wraps it so a test can tell how many were sent and
that none failed.
"""

from __future__ import annotations

from typing import Any


class SandboxWebhooks:
    def __init__(self, sandbox: Any, url: str) -> None:
        self.sandbox = sandbox
        sandbox.configure(webhook_url=url)
        self.sent = 0

    def mutate(self, **counts: int) -> dict[str, list[int]]:
        """sandbox.mutate(**counts), then wait until its webhooks were all delivered."""
        before = self.sandbox.stats()
        changed = self.sandbox.mutate(**counts)
        assert self.sandbox.flush_webhooks(timeout=30), "the sandbox could not deliver its webhooks"
        after = self.sandbox.stats()
        # Kaiten does not retry: a webhook the service refused would be lost for good.
        assert after["webhooks_failed"] == before["webhooks_failed"]
        self.sent += after["webhooks_sent"] - before["webhooks_sent"]
        return changed
