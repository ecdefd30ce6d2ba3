"""`kaiten-service`: serve the sync service with uvicorn (what `make serve` runs)."""

from __future__ import annotations

import argparse
import logging
import socket
import sys

import uvicorn

from kaiten_service.app import create_app
from kaiten_service.settings import Settings, SettingsError

log = logging.getLogger("kaiten_service")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted
    # connections only then, and without it every answer waits ~40 ms on
    # Nagle + delayed ACK (measured: 88 calls/s instead of hundreds).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kaiten-service",
        description="Kaiten webhooks, /api/sync and the /admin/sync page on top of `meltano run`.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="port to listen on; 0 picks a free one (default 8000)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--no-access-log", action="store_true", help="do not log each request")
    parser.add_argument(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-* from --forwarded-allow-ips (behind a TLS proxy)",
    )
    parser.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"kaiten-service: {exc}", file=sys.stderr)
        return 2
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        print(
            f"kaiten-service: cannot listen on {args.host}:{args.port} ({exc.strerror}): "
            "pick another --port or stop what uses it",
            file=sys.stderr,
        )
        return 2

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    # Tests and scripts read this line to find the port when --port 0 was given.
    log.info("listening on http://%s:%d (admin page: /admin/sync)", shown, port)
    config = uvicorn.Config(
        create_app(settings),
        log_config=None,
        access_log=not args.no_access_log,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        server_header=False,
        # The service is one process by design: runs and debounce state live in it.
        workers=None,
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
