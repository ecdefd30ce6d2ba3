"""Root conftest: pytest only accepts `pytest_plugins` here, not in tests/<area>/conftest.py.

Every area shares the real-PostgreSQL fixtures and the Kaiten sandbox fixtures; area
conftests add their own fixtures but must not declare `pytest_plugins` again.
"""

from __future__ import annotations

pytest_plugins = ["kaiten_local.pytest_plugin", "kaiten_sandbox.pytest_plugin"]
