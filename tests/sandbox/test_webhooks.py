"""Outgoing Kaiten-shaped webhooks after mutations."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from kaiten_sandbox.testing import session_for


@pytest.fixture
def receiver(kaiten_sandbox):
    """A real HTTP endpoint recording each webhook and the card as re-read on arrival."""
    received: list[dict] = []
    api = session_for(kaiten_sandbox)

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            data = body["data"]
            card_id = data["id"] if body["event"] == "card:add" else data["old"]["id"]
            reread = api.get(f"{kaiten_sandbox.api_url}/cards/{card_id}").json()
            received.append({"body": body, "reread": reread, "type": self.headers["Content-Type"]})
            self.send_response(200 if "fail" not in self.path else 500)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/webhooks/kaiten/secret", received
    server.shutdown()
    server.server_close()
    api.close()


def test_mutations_post_card_add_and_card_update_events(kaiten_sandbox, receiver):
    url, received = receiver
    kaiten_sandbox.configure(webhook_url=url)
    result = kaiten_sandbox.mutate(create=1, update=2, move=1, archive=1, delete=1)
    assert kaiten_sandbox.flush_webhooks()
    events = [r["body"] for r in received]
    adds = [e for e in events if e["event"] == "card:add"]
    updates = [e for e in events if e["event"] == "card:update"]
    assert [e["data"]["id"] for e in adds] == result["created"]
    changed = set(result["updated"] + result["moved"] + result["archived"])
    assert {e["data"]["old"]["id"] for e in updates} == changed
    assert not set(result["deleted"]) & {e["data"].get("id") for e in adds}
    truth = {c["id"]: c for c in kaiten_sandbox.truth("cards")["cards"]}
    for event in updates:
        data = event["data"]
        card = truth[data["old"]["id"]]
        assert data["changes"]["version"] == card["version"] == data["old"]["version"] + 1
        assert data["changes"]["updated"] == card["updated"]
        assert data["author"]["id"] == kaiten_sandbox.truth("users")["users"][0]["id"]
        assert {**data["old"], **data["changes"]} == card
    archived = next(e for e in updates if e["data"]["old"]["id"] in result["archived"])
    assert archived["data"]["changes"]["condition"] == 2
    assert all(r["type"] == "application/json" for r in received)
    # Sent after the change is visible: a receiver re-reading the card sees the new version.
    for record in received:
        data = record["body"]["data"]
        expected = (
            data["version"] if record["body"]["event"] == "card:add" else data["changes"]["version"]
        )
        assert record["reread"]["version"] == expected
    stats = kaiten_sandbox.stats()
    assert (stats["webhooks_sent"], stats["webhooks_failed"]) == (len(events), 0)


def test_failed_deliveries_are_counted_not_raised(kaiten_sandbox, receiver):
    url, received = receiver
    kaiten_sandbox.configure(webhook_url=url + "/fail")
    kaiten_sandbox.mutate(update=2)
    assert kaiten_sandbox.flush_webhooks()
    kaiten_sandbox.configure(webhook_url="http://127.0.0.1:9/nowhere")  # nothing listens there
    kaiten_sandbox.mutate(update=1)
    assert kaiten_sandbox.flush_webhooks()
    stats = kaiten_sandbox.stats()
    assert (stats["webhooks_sent"], stats["webhooks_failed"]) == (0, 3)
    assert len(received) == 2  # no retries


def test_no_webhooks_unless_configured_and_after_switching_off(kaiten_sandbox, receiver):
    url, received = receiver
    kaiten_sandbox.mutate(update=2)
    kaiten_sandbox.configure(webhook_url=url)
    kaiten_sandbox.configure(webhook_url=None)
    kaiten_sandbox.mutate(update=2)
    assert kaiten_sandbox.flush_webhooks()
    assert received == []


def test_webhook_url_is_validated_and_settable_over_http(kaiten_sandbox, receiver):
    url, received = receiver
    config = f"{kaiten_sandbox.base_url}/_sandbox/config"
    assert requests.post(config, json={"webhook_url": "ftp://x"}).status_code == 400
    assert requests.post(config, json={"webhook_url": url}).json()["webhook_url"] == url
    requests.post(f"{kaiten_sandbox.base_url}/_sandbox/mutate", json={"create": 1})
    assert kaiten_sandbox.flush_webhooks()
    assert [r["body"]["event"] for r in received] == ["card:add"]
