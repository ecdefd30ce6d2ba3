"""The Meltano Singer SDK's standard tap test suite, run against a sandbox."""

from __future__ import annotations

import atexit

import pytest
from kaiten_sandbox import Sandbox
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_kaiten.tap import TapKaiten

# The SDK builds the test class at import time from a config, so the sandbox has to
# be up by then; it is stopped when this module's tests finish (or at exit).
_SANDBOX = Sandbox(seed=21, cards=120, rate_limit=0).start(port=0)
atexit.register(_SANDBOX.stop)

TestTapKaiten = get_tap_test_class(
    tap_class=TapKaiten,
    config={
        "api_url": _SANDBOX.base_url,
        "api_token": _SANDBOX.token,
        "requests_per_second": 1000,
    },
    suite_config=SuiteConfig(max_records_limit=None),
)


@pytest.fixture(scope="module", autouse=True)
def _stop_sandbox_after_module():
    yield
    _SANDBOX.stop()
