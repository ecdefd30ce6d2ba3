"""Small client helpers for tests that talk to a sandbox over real HTTP."""

from __future__ import annotations

from typing import Any

import requests

from kaiten_sandbox.sandbox import Sandbox


def session_for(sandbox: Sandbox, token: str | None = None) -> requests.Session:
    """A requests session sending the sandbox's Bearer token (or another one)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token or sandbox.token}"
    return session


def fetch_all(
    session: requests.Session, url: str, params: dict[str, Any] | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Offset-page a list endpoint until a short page, as a Kaiten client must."""
    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        response = session.get(url, params={**(params or {}), "limit": limit, "offset": offset})
        if response.status_code != 200:
            raise AssertionError(f"{url} answered {response.status_code}: {response.text[:200]}")
        page = response.json()
        rows.extend(page)
        if len(page) < limit:
            return rows
        offset += limit
