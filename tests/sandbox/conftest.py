from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from kaiten_sandbox import Sandbox
from kaiten_sandbox.testing import session_for

# The sandbox fixtures come from the root tests/conftest.py (pytest_plugins lives there).


@pytest.fixture
def api(kaiten_sandbox: Sandbox) -> Iterator[requests.Session]:
    """A client session authenticated against the function-scoped sandbox."""
    with session_for(kaiten_sandbox) as session:
        yield session
