"""Pytest fixtures: enable with ``pytest_plugins = ["kaiten_sandbox.pytest_plugin"]``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kaiten_sandbox.sandbox import Sandbox


@pytest.fixture
def kaiten_sandbox_factory() -> Iterator[Callable[..., Sandbox]]:
    """Start sandboxes with any Sandbox(...) arguments; all are stopped at teardown."""
    started: list[Sandbox] = []

    def make(**kwargs: Any) -> Sandbox:
        sandbox = Sandbox(**kwargs).start(port=0)
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def kaiten_sandbox(kaiten_sandbox_factory: Callable[..., Sandbox]) -> Sandbox:
    """A small workspace (seed 42, 300 cards), rate limiting off."""
    return kaiten_sandbox_factory(seed=42, cards=300, rate_limit=0)
