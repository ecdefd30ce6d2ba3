from __future__ import annotations

import pytest
import requests

from kaiten_sandbox import Sandbox

pytest_plugins = ["kaiten_sandbox.pytest_plugin"]


@pytest.fixture
def api(kaiten_sandbox: Sandbox) -> requests.Session:
    """A client session authenticated against the function-scoped sandbox."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {kaiten_sandbox.token}"
    yield session
    session.close()
