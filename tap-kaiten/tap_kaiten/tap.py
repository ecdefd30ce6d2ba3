"""tap-kaiten: the settings, their validation, and the list of streams."""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import logging
import os
import re
import sys
import typing as t
from urllib.parse import urlsplit

import click
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError, RetriableAPIError
from typing_extensions import override

from tap_kaiten import logs, output, streams
from tap_kaiten.client import (
    DEFAULT_PARALLEL_REQUESTS,
    KaitenAPIError,
    describe_transport_error,
    parse_datetime,
)

if t.TYPE_CHECKING:
    from singer_sdk.streams import Stream

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
HEX = "[0-9a-fA-F]"
UUID_RE = re.compile(rf"^{HEX}{{8}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{12}}$")
HOST_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# The variable names users already have from the original site's setup guide.
ENV_URL = "KAITEN_API_URL"
ENV_TOKEN = "KAITEN_API_TOKEN"  # noqa: S105  (a variable name, not a secret)
EXAMPLE_URL = "https://my-studio.kaiten.ru"

# (setting, lowest, highest): checked here so the message names the setting.
NUMBER_RANGES: tuple[tuple[str, float, float, bool], ...] = (
    ("requests_per_second", 0.1, 1000, False),
    ("lookback_minutes", 0, 43200, True),
    ("request_timeout", 1, 600, False),
    ("max_parallel_requests", 1, 32, True),
)

STREAM_TYPES: tuple[type[Stream], ...] = (
    streams.SpacesStream,
    streams.BoardsStream,
    streams.ColumnsStream,
    streams.LanesStream,
    streams.UsersStream,
    streams.TagsStream,
    streams.CardTypesStream,
    streams.CustomPropertiesStream,
    streams.CardsStream,
    streams.CardLocationHistoryStream,
    streams.CardCommentsStream,
)


class KaitenSettingsError(Exception):
    """A setting is missing or malformed; the message says what to do."""


class TapKaiten(Tap):
    """Singer tap for the Kaiten kanban API."""

    name = "tap-kaiten"
    # msgspec serialises Singer messages several times faster than the default writer;
    # ours writes them to stdout in blocks (tap_kaiten/output.py).
    message_writer_class = output.BlockMsgSpecWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_url",
            th.StringType,
            required=True,
            title="Kaiten URL",
            description=(
                "Your company's Kaiten host, e.g. https://my-studio.kaiten.ru, WITHOUT "
                "/api/latest (the tap adds it). Standalone, falls back to $KAITEN_API_URL."
            ),
        ),
        th.Property(
            "api_token",
            th.StringType,
            required=True,
            secret=True,
            title="API token",
            description=(
                "The UUID token from Kaiten (profile -> API keys), WITHOUT the word Bearer. "
                "Standalone, falls back to $KAITEN_API_TOKEN."
            ),
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            title="Start date",
            description="Optional floor for cards: only cards updated at or after it are read.",
        ),
        th.Property(
            "requests_per_second",
            th.NumberType,
            default=5,
            title="Requests per second",
            description=(
                "Client-side limit shared by all streams (Kaiten documents 5/s; 50/s was "
                "measured per token). Retry-After and X-RateLimit-* are always obeyed."
            ),
        ),
        th.Property(
            "max_parallel_requests",
            th.IntegerType,
            default=DEFAULT_PARALLEL_REQUESTS,
            title="Requests in flight",
            description=(
                "How many requests may be in flight at once (1 to 32; 1 = one at a time). "
                "While cards are read, each card's history, comments and checklists and the "
                "next /cards page are asked for ahead, within requests_per_second. 8 keeps "
                "50 requests/s with answers of up to ~150 ms."
            ),
        ),
        th.Property(
            "lookback_minutes",
            th.IntegerType,
            default=0,
            title="Lookback (minutes)",
            description="Re-read cards updated this many minutes before the bookmark.",
        ),
        th.Property(
            "space_ids",
            th.ArrayType(th.IntegerType),
            title="Space ids",
            description="Only read cards of these spaces (default: every space the token sees).",
        ),
        th.Property(
            "include_archived",
            th.BooleanType,
            default=True,
            title="Include archived cards",
            description="Also read archived cards (condition 2).",
        ),
        th.Property(
            "include_checklists",
            th.BooleanType,
            default=True,
            title="Include card checklists",
            description=(
                "Fill cards.checklists from GET /cards/{id}, one request per card that has "
                "checklists (checklists_total > 0); the /cards list does not carry them."
            ),
        ),
        th.Property(
            "emit_activate_version_messages",
            th.BooleanType,
            default=True,
            title="Mark deleted rows",
            description=(
                "After a complete read of a table, send one ACTIVATE_VERSION so the target marks "
                "rows Kaiten no longer returns as deleted (_sdc_deleted_at). Full-table streams "
                "are read completely on every run; cards and their history and comments only "
                "in a full sync (no bookmark, start_date or space_ids; archived included). Never "
                "at the start of a read, never in an incremental cards run."
            ),
        ),
        th.Property(
            "request_timeout",
            th.NumberType,
            default=60,
            title="Read timeout (seconds)",
            description="Seconds to wait for a response before retrying (connect timeout: 10 s).",
        ),
    ).to_dict()

    @override
    def discover_streams(self) -> list[Stream]:
        streams = [stream_type(tap=self) for stream_type in STREAM_TYPES]
        logs.quiet_child_syncs(streams)
        return streams

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # The SDK's only validation hook (no public one in 0.54): it runs inside
        # __init__, before any stream exists or any request is made, and before the
        # JSON-schema check, so the KAITEN_API_* fallbacks can fill required settings.
        try:
            self._normalise_settings()
        except KaitenSettingsError as exc:
            if raise_errors:
                raise
            self.logger.warning("%s", exc)
            return [str(exc)]
        return super()._validate_config(raise_errors=raise_errors)

    def _normalise_settings(self) -> None:
        config = self._config
        for key, env_name in (("api_url", ENV_URL), ("api_token", ENV_TOKEN)):
            if not config.get(key) and os.environ.get(env_name):
                config[key] = os.environ[env_name]
        if not config.get("api_url") or not config.get("api_token"):
            msg = f"Missing Kaiten API credentials: set {ENV_URL} and {ENV_TOKEN}"
            raise KaitenSettingsError(msg)
        config["api_url"] = self._checked_url(config["api_url"])
        self._check_token(config["api_token"])
        self._check_start_date(config.get("start_date"))
        self._check_numbers(config)
        self._check_space_ids(config.get("space_ids"))
        for flag in ("include_archived", "include_checklists", "emit_activate_version_messages"):
            if flag in config and not isinstance(config[flag], bool):
                msg = f"{flag} must be true or false"
                raise KaitenSettingsError(msg)

    def _checked_url(self, raw: object) -> str:
        if not isinstance(raw, str):
            msg = f"{ENV_URL} must be a text URL such as {EXAMPLE_URL}"
            raise KaitenSettingsError(msg)
        url = raw.strip()
        if url != raw:
            self.logger.warning("%s had surrounding whitespace; it was removed", ENV_URL)
        if url.endswith("/") and not url.rstrip("/").endswith(":"):
            url = url.rstrip("/")
            self.logger.warning("%s had a trailing slash; it was removed", ENV_URL)
        if "://" not in url:
            msg = f"{ENV_URL} has no scheme: write it as {EXAMPLE_URL}"
            raise KaitenSettingsError(msg)
        parts = urlsplit(url)
        try:
            host = parts.hostname or ""
            _ = parts.port  # raises on a non-numeric port
        except ValueError:
            host = ""
        if parts.scheme not in {"https", "http"}:
            msg = f"{ENV_URL} must use https:// (found '{parts.scheme}://'), e.g. {EXAMPLE_URL}"
            raise KaitenSettingsError(msg)
        if parts.scheme == "http" and host not in LOCAL_HOSTS:
            msg = (
                f"{ENV_URL} must use https:// (http is allowed only for localhost), "
                f"e.g. {EXAMPLE_URL}"
            )
            raise KaitenSettingsError(msg)
        if parts.path or parts.query or parts.fragment:
            found = url[len(f"{parts.scheme}://{parts.netloc}") :]
            msg = (
                f"{ENV_URL} should NOT include /api/latest or any other path "
                f"(found '{found}'): set only the company host, e.g. {EXAMPLE_URL}"
            )
            raise KaitenSettingsError(msg)
        if parts.username or parts.password or not _is_valid_host(host):
            msg = f"{ENV_URL} has an invalid host: write it as {EXAMPLE_URL}"
            raise KaitenSettingsError(msg)
        return url

    def _check_token(self, token: object) -> None:
        if not isinstance(token, str):
            msg = f"{ENV_TOKEN} must be the text token shown by Kaiten"
            raise KaitenSettingsError(msg)
        if token.strip().lower().startswith("bearer"):
            msg = (
                f"{ENV_TOKEN} starts with 'Bearer': remove the word, set only the token "
                "(the tap adds 'Bearer' itself)"
            )
            raise KaitenSettingsError(msg)
        if any(ch.isspace() for ch in token):
            msg = f"{ENV_TOKEN} contains whitespace: paste the token without spaces or line breaks"
            raise KaitenSettingsError(msg)
        if not UUID_RE.match(token):
            self.logger.warning(
                "%s does not look like a Kaiten token (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                ENV_TOKEN,
            )

    @staticmethod
    def _check_start_date(value: object) -> None:
        if value is None:
            return
        try:
            parse_datetime(str(value)) if isinstance(value, str) else _raise_value_error()
        except ValueError:
            msg = (
                f"start_date is not a valid ISO 8601 date/time ({value!r}): "
                "use e.g. 2024-01-31 or 2024-01-31T00:00:00Z"
            )
            raise KaitenSettingsError(msg) from None

    @staticmethod
    def _check_numbers(config: dict[str, t.Any]) -> None:
        for name, low, high, integer in NUMBER_RANGES:
            if name not in config or config[name] is None:
                continue
            value = config[name]
            kind = "an integer" if integer else "a number"
            ok_type = isinstance(value, int if integer else (int, float))
            if isinstance(value, bool) or not ok_type or not low <= value <= high:
                msg = f"{name} must be {kind} from {low:g} to {high:g} (got {value!r})"
                raise KaitenSettingsError(msg)

    @staticmethod
    def _check_space_ids(value: object) -> None:
        if value is None:
            return
        if not isinstance(value, list) or not all(
            isinstance(item, int) and not isinstance(item, bool) and item > 0 for item in value
        ):
            msg = f"space_ids must be a list of positive integer space ids (got {value!r})"
            raise KaitenSettingsError(msg)

    @override
    def sync_all(self) -> None:
        with output.flushed():
            super().sync_all()

    @classmethod
    @override
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        # The CLI process only (not a test importing the tap): everything imported so far
        # (the SDK, requests, jsonschema) lives to the end, so it is frozen out of the
        # cycle collector's scans, and young objects are scanned less often. Records hold
        # no cycles; ~1 CPU-s less per 100,000 cards (issue #7).
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
        with _one_line_errors():
            super().invoke(*args, **kwargs)

    @classmethod
    @override
    def cb_test(cls, *args: t.Any, **kwargs: t.Any) -> None:
        # `tap-kaiten --test` (what `meltano config tap-kaiten test` runs) fails alike.
        with _one_line_errors(), output.flushed():
            super().cb_test(*args, **kwargs)


@contextlib.contextmanager
def _one_line_errors() -> t.Iterator[None]:
    """Bad settings and fatal API answers: one line on stderr, exit 1, no traceback.

    None of these messages contains the token.
    """
    try:
        yield
    except (KaitenSettingsError, KaitenAPIError) as exc:
        _fail(str(exc))
    except ConfigValidationError as exc:
        _fail("Invalid settings: " + "; ".join(exc.errors or [str(exc)]))
    except (FatalAPIError, RetriableAPIError) as exc:
        _fail(f"Kaiten API Error: {exc}")
    except OSError as exc:  # requests' connection errors are OSErrors too
        _fail(describe_transport_error(exc))


def _fail(message: str) -> t.NoReturn:
    _silence_logging()
    click.echo(message, err=True)
    sys.exit(1)


def _silence_logging() -> None:
    """No log line after the error line: worker threads may still be finishing requests.

    Logging is switched off, and every handler's lock is taken and kept to the end: a line
    already on its way to a handler waits there. The locks are re-entrant, so this thread
    can still flush and close the handlers at exit.
    """
    logging.disable(logging.CRITICAL)
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            handler.acquire()
            handler.flush()


def _raise_value_error() -> t.NoReturn:
    raise ValueError


def _is_valid_host(host: str) -> bool:
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return all(HOST_LABEL_RE.match(label) for label in host.split("."))
    return True


if __name__ == "__main__":
    TapKaiten.cli()
