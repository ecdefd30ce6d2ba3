"""``kaiten-sandbox``: run the sandbox as its own process (demo, manual poking, benchmarks)."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from types import FrameType
from typing import NoReturn

from kaiten_sandbox.sandbox import Sandbox

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _non_negative_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


MAX_CARDS = 1_000_000  # ~1.8 GB of memory; more is a typo, not a test


def _cards(raw: str) -> int:
    value = _non_negative_int(raw)
    if value > MAX_CARDS:
        raise argparse.ArgumentTypeError(f"at most {MAX_CARDS:,} cards, got {value:,}")
    return value


def _port(raw: str) -> int:
    value = _non_negative_int(raw)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, got {value}")
    return value


def _share(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number between 0 and 1, got {raw!r}"
        ) from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value}")
    return value


def _webhook_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")) or len(raw) <= 8:
        raise argparse.ArgumentTypeError("must be an http:// or https:// URL")
    return raw


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {raw!r}") from None
    if not 0 <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"expected 0 to 86400 seconds, got {value}")
    return value


def _token(raw: str) -> str:
    if not _UUID.fullmatch(raw):
        # Do not echo the value: it may be a real token pasted by mistake.
        raise argparse.ArgumentTypeError(
            "must be a UUID like xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (without 'Bearer')"
        )
    return raw


class _OneLineParser(argparse.ArgumentParser):
    """Bad arguments get one line saying what is wrong, not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="kaiten-sandbox",
        description="Serve a generated Kaiten workspace at http://HOST:PORT/api/latest.",
    )
    parser.add_argument("--port", type=_port, default=8800, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=42, help="same seed, same workspace")
    parser.add_argument("--cards", type=_cards, default=10_000, help="0 to 1,000,000")
    parser.add_argument(
        "--rate-limit", type=_non_negative_int, default=5, help="requests/s per token; 0 = off"
    )
    parser.add_argument("--fault-rate", type=_share, default=0.0, help="share of 5xx answers")
    parser.add_argument("--token", type=_token, default=None, help="default: derived from seed")
    parser.add_argument(
        "--updated-after",
        choices=["inclusive", "strict"],
        default="inclusive",
        help="whether updated_after keeps cards updated exactly at the bound",
    )
    parser.add_argument(
        "--webhook-url",
        type=_webhook_url,
        default=None,
        help="POST Kaiten-shaped card:add/card:update webhooks here after each change",
    )
    parser.add_argument(
        "--activity",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="change a few cards every SECONDS, like a team at work (0 = a still workspace)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sandbox = Sandbox(
            seed=args.seed,
            cards=args.cards,
            rate_limit=args.rate_limit,
            token=args.token,
            fault_rate=args.fault_rate,
            updated_after=args.updated_after,
            webhook_url=args.webhook_url,
        )
    except KeyboardInterrupt:  # Ctrl-C while a big workspace is being generated
        return 130
    try:
        sandbox.start(port=args.port, host=args.host)
    except OSError as exc:
        print(
            f"kaiten-sandbox: cannot listen on {args.host}:{args.port} ({exc.strerror}); "
            "pick another --port (0 = any free port)",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"KAITEN_API_URL={sandbox.base_url}")
    print(f"KAITEN_API_TOKEN={sandbox.token}", flush=True)
    if args.activity:
        # Small, steady changes: a demo then shows incremental syncs and webhooks at work.
        while not stop.wait(args.activity):
            sandbox.mutate(update=3, move=2, create=1, touch_same_ms=2)
    stop.wait()
    sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
