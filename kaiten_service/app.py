"""The ASGI app: Kaiten webhooks, protected sync endpoints, status, the /admin/sync page."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kaiten_service.bookmarks import read_bookmarks
from kaiten_service.runner import RunAlreadyGoingError, RunKind, SyncRunner, redact, secret_values
from kaiten_service.settings import Settings

log = logging.getLogger("kaiten_service")

MAX_BODY_BYTES = 1024 * 1024

# Kaiten's outgoing webhook events (shared/kaiten-api.md). Moves and archiving
# arrive as card:update; there is no card:remove.
KAITEN_EVENTS = frozenset(
    {
        "card:add",
        "card:update",
        *(f"comment:{a}" for a in ("add", "update", "remove")),
        *(f"card_member:{a}" for a in ("add", "update", "remove")),
        *(f"tag:{a}" for a in ("add", "update", "remove")),
        "block:add",
        "block:update",
        *(f"card_time_log:{a}" for a in ("add", "update", "remove")),
        *(f"file:{a}" for a in ("add", "update", "remove")),
        "board:add",
        "board:update",
        "space:update",
    }
)
# The names the original site's setup guide told users to pick.
EVENT_ALIASES = {
    "card.create": "card:add",
    "card.update": "card:update",
    "card.move": "card:update",
}

NOT_FOUND_BODY = {"error": "not found"}


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _digest(value: str) -> bytes:
    # Hashing first makes the comparison take the same time whatever the
    # lengths, so response timing says nothing about the secret's length.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def secret_matches(candidate: str | None, secret: str | None) -> bool:
    if not candidate or not secret:
        return False
    return hmac.compare_digest(_digest(candidate), _digest(secret))


def _card_id(event: str, payload: dict[str, Any]) -> int | None:
    """The card a hint is about, for the status page only: the sync re-reads Kaiten anyway."""
    data = payload.get("data")
    if not isinstance(data, dict):
        return None
    old = data.get("old") if isinstance(data.get("old"), dict) else {}
    candidates = [data.get("card_id"), old.get("card_id")]
    if event.startswith("card:"):
        # card:add carries the card itself, card:update its previous version.
        candidates += [old.get("id"), data.get("id")]
    for candidate in candidates:
        if isinstance(candidate, int) and not isinstance(candidate, bool):
            return candidate
    return None


class _BodyTooLargeError(Exception):
    pass


async def _read_limited_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _BodyTooLargeError
    # Chunked bodies declare nothing: count while reading and stop early.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


class SecurityHeaders:
    """Headers every answer carries: nothing here is for caching or framing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"cache-control", b"no-store"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _RedactSecretFilter(logging.Filter):
    """Uvicorn's access log prints request paths; the webhook path carries the secret."""

    def __init__(self, hide: list[str]) -> None:
        super().__init__()
        self.hide = hide

    def filter(self, record: logging.LogRecord) -> bool:
        if self.hide and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(a, self.hide) if isinstance(a, str) else a for a in args)
        if self.hide and isinstance(record.msg, str):
            record.msg = redact(record.msg, self.hide)
        return True


def _static(name: str) -> str:
    return resources.files("kaiten_service").joinpath("static", name).read_text(encoding="utf-8")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    runner = SyncRunner(settings)
    started_at = datetime.now(UTC)
    hide = secret_values(settings.child_env)
    if settings.webhook_secret:
        hide = sorted(
            {*hide, settings.webhook_secret, quote(settings.webhook_secret, safe="")},
            key=len,
            reverse=True,
        )
    access_filter = _RedactSecretFilter(hide)
    page_html, page_js, page_css = (
        _static("admin_sync.html"),
        _static("admin_sync.js"),
        _static("admin_sync.css"),
    )

    def authorize(request: Request) -> JSONResponse | None:
        if not settings.sync_enabled:
            return error(
                503,
                "sync endpoints are disabled: "
                "set KAITEN_WEBHOOK_SECRET on the server and restart it",
            )
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            response = error(401, "missing header: Authorization: Bearer <KAITEN_WEBHOOK_SECRET>")
        elif not secret_matches(token.strip(), settings.webhook_secret):
            response = error(401, "wrong secret: use the value of KAITEN_WEBHOOK_SECRET")
        else:
            return None
        response.headers["www-authenticate"] = "Bearer"
        return response

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "sync_enabled": settings.sync_enabled,
                "run_going": runner.current is not None,
            }
        )

    async def webhook(request: Request) -> JSONResponse:
        candidate = request.path_params.get("secret") or request.query_params.get("secret")
        if not settings.sync_enabled or not secret_matches(candidate, settings.webhook_secret):
            # Same answer as any unknown URL: a prober learns nothing.
            return JSONResponse(NOT_FOUND_BODY, status_code=404)
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            return error(415, "Content-Type must be application/json")
        try:
            body = await _read_limited_body(request)
        except _BodyTooLargeError:
            return error(413, f"body over {MAX_BODY_BYTES // 1024} KiB")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return error(400, "malformed JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
            return error(400, 'expected a JSON object with an "event" string')
        name = EVENT_ALIASES.get(payload["event"], payload["event"])
        if name not in KAITEN_EVENTS:
            return error(422, "unknown event", event=payload["event"][:100])
        due_in = runner.record_event(name, _card_id(name, payload))
        return JSONResponse(
            {"accepted": name, "run_due_in_seconds": round(due_in, 3)}, status_code=202
        )

    async def start_sync(request: Request, kind: RunKind) -> JSONResponse:
        if denied := authorize(request):
            return denied
        if await runner.locked_elsewhere():
            return error(
                409, "a sync run started outside this service is going (pipeline lock held)"
            )
        try:
            run = runner.start_run(kind, trigger="api")
        except RunAlreadyGoingError as exc:
            return error(
                409, "a sync run is already going", run_id=exc.run.id, kind=str(exc.run.kind)
            )
        return JSONResponse(
            {"run_id": run.id, "kind": str(run.kind), "status": "/api/sync/status"}, status_code=202
        )

    async def sync(request: Request) -> JSONResponse:
        return await start_sync(request, RunKind.INCREMENTAL)

    async def sync_full(request: Request) -> JSONResponse:
        return await start_sync(request, RunKind.FULL)

    async def status(request: Request) -> JSONResponse:
        if denied := authorize(request):
            return denied
        return JSONResponse(
            {
                "service": {
                    "started_at": started_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
                    "sync_enabled": settings.sync_enabled,
                    "debounce_seconds": settings.debounce_seconds,
                    "max_delay_seconds": settings.max_delay_seconds,
                },
                **runner.status(),
                "bookmarks": await read_bookmarks(settings.database_url),
            }
        )

    async def admin_page(request: Request) -> Response:
        return Response(
            page_html,
            media_type="text/html; charset=utf-8",
            # Only our own script and style: an injected <script> in a run's
            # error text could not run, let alone read the secret.
            headers={
                "content-security-policy": "default-src 'none'; script-src 'self'; "
                "style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; "
                "form-action 'none'; frame-ancestors 'none'"
            },
        )

    async def admin_js(request: Request) -> Response:
        return Response(page_js, media_type="text/javascript; charset=utf-8")

    async def admin_css(request: Request) -> Response:
        return Response(page_css, media_type="text/css; charset=utf-8")

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            return error(405, "method not allowed")
        return JSONResponse(NOT_FOUND_BODY, status_code=404)

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette still logs the traceback; the client gets no internals.
        return error(500, "internal error: see the service log")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logging.getLogger("uvicorn.access").addFilter(access_filter)
        for warning in settings.warnings:
            log.warning("!!! %s", warning)
        await runner.start()
        try:
            yield
        finally:
            await runner.stop()
            logging.getLogger("uvicorn.access").removeFilter(access_filter)

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/api/webhooks/kaiten", webhook, methods=["POST"]),
            Route("/api/webhooks/kaiten/{secret}", webhook, methods=["POST"]),
            Route("/api/sync", sync, methods=["POST"]),
            Route("/api/sync/full", sync_full, methods=["POST"]),
            Route("/api/sync/status", status, methods=["GET"]),
            Route("/admin/sync", admin_page, methods=["GET"]),
            Route("/admin/sync.js", admin_js, methods=["GET"]),
            Route("/admin/sync.css", admin_css, methods=["GET"]),
        ],
        exception_handlers={404: not_found, 405: not_found, Exception: internal_error},
        lifespan=lifespan,
    )
    app.add_middleware(SecurityHeaders)
    app.state.runner = runner
    app.state.settings = settings
    return app
