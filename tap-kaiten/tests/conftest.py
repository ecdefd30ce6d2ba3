"""Shared fixtures: the Kaiten sandbox over real HTTP on 127.0.0.1."""

from __future__ import annotations

pytest_plugins = ["kaiten_sandbox.pytest_plugin"]
