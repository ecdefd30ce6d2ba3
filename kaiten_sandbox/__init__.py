"""A local Kaiten API server for the demo, the tests and the benchmarks."""

from __future__ import annotations

from kaiten_sandbox.sandbox import Sandbox

__all__ = ["Sandbox"]
