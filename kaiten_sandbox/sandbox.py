"""In-process handle on a sandbox server: what tests, the demo and benchmarks use."""

from __future__ import annotations

import threading
from dataclasses import asdict
from types import TracebackType
from typing import Any

from kaiten_sandbox.data import Workspace
from kaiten_sandbox.server import App, SandboxConfig, SandboxHTTPServer


class Sandbox:
    """A Kaiten-like API server on 127.0.0.1, serving from a background thread.

    The Python methods mirror the HTTP control endpoints one to one, so a test may use
    either and get the same answers.
    """

    def __init__(
        self,
        seed: int = 42,
        cards: int = 1000,
        rate_limit: int = 0,
        token: str | None = None,
        fault_rate: float = 0.0,
        updated_after: str = "inclusive",
        **config: Any,
    ) -> None:
        self.workspace = Workspace(seed=seed, cards=cards, token=token)
        self._app = App(self.workspace, SandboxConfig())
        self._app.configure(
            {"rate_limit": rate_limit, "fault_rate": fault_rate, "updated_after": updated_after}
            | config
        )
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, port: int = 0, host: str = "127.0.0.1") -> Sandbox:
        if self._server is not None:
            return self
        self._server = SandboxHTTPServer((host, port), self._app)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # stop() waits up to one interval
            name=f"kaiten-sandbox:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox is not running: call start() first")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The company host, as users configure it (clients append /api/latest)."""
        host = self._server.server_address[0] if self._server else "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/latest"

    @property
    def token(self) -> str:
        return self.workspace.token

    # ------------------------------------------------------------------ control
    def truth(self, *streams: str) -> dict[str, Any]:
        """Same as GET /_sandbox/state[?streams=a,b]: JSON types only, and the caller owns
        every object. Name streams to get only those: 100,000 cards take seconds."""
        return self.workspace.truth(streams or None, fresh=True)

    def mutate(self, seed: int | None = None, **counts: int) -> dict[str, list[int]]:
        body: dict[str, Any] = dict(counts)
        if seed is not None:
            body["seed"] = seed
        return self._app.mutate(body)

    def configure(self, **cfg: Any) -> dict[str, Any]:
        return self._app.configure(cfg)

    @property
    def config(self) -> dict[str, Any]:
        return asdict(self._app.config)

    def stats(self) -> dict[str, Any]:
        return self._app.stats.snapshot()

    def requests(self) -> list[dict[str, Any]]:
        """Same as GET /_sandbox/requests: every API request since the last reset, oldest
        first: `at` and `answered_at` (epoch seconds), `path`, `status` (None: dropped),
        `retry_after` (the header sent, if any)."""
        return self._app.stats.requests()

    def reset_stats(self) -> None:
        self._app.stats.reset()

    def flush_webhooks(self, timeout: float = 10.0) -> bool:
        """Block until every queued webhook has been attempted (see stats()
        webhooks_sent / webhooks_failed); False if `timeout` seconds pass first."""
        return self._app.webhooks.flush(timeout)
