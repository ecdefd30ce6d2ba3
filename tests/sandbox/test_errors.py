"""Status codes and body shapes for auth failures, unknown paths, wrong methods, bad input."""

from __future__ import annotations

import socket

import pytest
import requests


def test_missing_token_gets_401_plain_string(kaiten_sandbox):
    response = requests.get(f"{kaiten_sandbox.api_url}/cards")
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text == "Unauthorized"


@pytest.mark.parametrize(
    "header", ["Bearer 00000000-0000-4000-8000-000000000000", "Bearer ", "Token abc", "Basic x"]
)
def test_wrong_token_gets_401_plain_string(kaiten_sandbox, header):
    response = requests.get(
        f"{kaiten_sandbox.api_url}/users/current", headers={"Authorization": header}
    )
    assert response.status_code == 401
    assert response.text in ("Invalid token", "Unauthorized")
    assert kaiten_sandbox.token not in response.text


def test_configured_token_is_the_one_accepted(kaiten_sandbox_factory):
    token = "296a5709-99bc-49a7-96e0-c0a1b236091f"
    sandbox = kaiten_sandbox_factory(cards=10, token=token)
    assert sandbox.token == token
    ok = requests.get(
        f"{sandbox.api_url}/users/current", headers={"Authorization": f"Bearer {token}"}
    )
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "path", ["/api/latest/nope", "/api/latest/cards/1/nope", "/api/v2/cards", "/", "/api/latest"]
)
def test_unknown_paths_get_404(kaiten_sandbox, api, path):
    response = api.get(f"{kaiten_sandbox.base_url}{path}")
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/cards/removed", "/boards/removed", "/cards/{id}/checklists"])
def test_unsupported_known_paths_get_405(kaiten_sandbox, api, path):
    card_id = kaiten_sandbox.truth()["cards"][0]["id"]
    response = api.get(f"{kaiten_sandbox.api_url}{path.format(id=card_id)}")
    assert response.status_code == 405


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
def test_wrong_method_on_known_path_gets_405(kaiten_sandbox, api, method):
    response = api.request(method, f"{kaiten_sandbox.api_url}/cards", json={"title": "x"})
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize("path", ["/cards/abc", "/boards/1.5", "/spaces/-3", "/cards/1e3/comments"])
def test_non_numeric_ids_get_400_json_message(kaiten_sandbox, api, path):
    response = api.get(f"{kaiten_sandbox.api_url}{path}")
    assert response.status_code == 400
    assert "id must be" in response.json()["message"]


@pytest.mark.parametrize(
    "path", ["/cards/1", "/boards/999999", "/spaces/1", "/boards/1/columns", "/cards/7/comments"]
)
def test_unknown_ids_get_404_without_body(kaiten_sandbox, api, path):
    response = api.get(f"{kaiten_sandbox.api_url}{path}")
    assert response.status_code == 404
    assert response.content == b""


def test_control_endpoints_reject_bad_json_with_400(kaiten_sandbox):
    for path in ("/_sandbox/mutate", "/_sandbox/config"):
        response = requests.post(f"{kaiten_sandbox.base_url}{path}", data=b"{not json")
        assert response.status_code == 400
        assert "JSON" in response.json()["message"]


@pytest.mark.parametrize(
    "body",
    [{"create": -1}, {"update": "3"}, {"explode": 1}, {"delete": True}, {"seed": "x"}, [1, 2]],
)
def test_mutate_rejects_bad_counts(kaiten_sandbox, body):
    before = kaiten_sandbox.truth()
    response = requests.post(f"{kaiten_sandbox.base_url}/_sandbox/mutate", json=body)
    assert response.status_code == 400
    assert response.json()["message"]
    assert kaiten_sandbox.truth() == before


@pytest.mark.parametrize(
    "body",
    [{"rate_limit": -1}, {"fault_rate": 2}, {"updated_after": "maybe"}, {"nonsense": 1},
     {"inject": [{"count": 0, "status": 500}]}, {"fault_statuses": []}],
)  # fmt: skip
def test_config_rejects_bad_values(kaiten_sandbox, body):
    response = requests.post(f"{kaiten_sandbox.base_url}/_sandbox/config", json=body)
    assert response.status_code == 400
    assert next(iter(body)) in response.json()["message"]


def test_server_survives_garbage_and_keeps_answering(kaiten_sandbox, api):
    host, port = "127.0.0.1", kaiten_sandbox.port
    for raw in (
        b"\x16\x03\x01garbage\r\n\r\n",
        b"GET /api/latest/cards HTTP/1.1\r\nContent-Length: zz\r\n\r\n",
    ):
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(raw)
            reply = sock.recv(4096)
            assert b"400" in reply.split(b"\r\n", 1)[0] or b"400 - Bad request" in reply
            assert b"Traceback" not in reply
    too_big = requests.post(
        f"{kaiten_sandbox.base_url}/_sandbox/mutate", headers={"Content-Length": str(10**10)}
    )
    assert too_big.status_code == 400
    huge = api.get(f"{kaiten_sandbox.api_url}/cards", params={"offset": 10**30})
    assert huge.status_code == 200
    assert huge.json() == []
    assert api.get(f"{kaiten_sandbox.api_url}/cards/{'9' * 400}").status_code == 404
    assert api.get(f"{kaiten_sandbox.api_url}/users/current").status_code == 200
