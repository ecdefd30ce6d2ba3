"""Service settings: the process environment first, then the project's `.env`.

Meltano reads the same `.env`, so one file configures the pipeline and the
service alike. Only non-secret knobs have defaults; the secret has none.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

# The secret travels in webhook URLs and Authorization headers; anything shorter
# can be guessed from the outside by trying.
MIN_SECRET_LENGTH = 16
# Placeholders from .env.example and the original setup guide: a copied
# example would be a secret everyone knows.
EXAMPLE_SECRET_PREFIXES = ("change-me", "your-random-secret", "your-secret")
GENERATE_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"  # noqa: S105 - a command, not a secret


class SettingsError(ValueError):
    """A setting has a value the service cannot use; the message says which and how to fix it."""


def _default_meltano() -> str:
    # `make serve` runs from .venv/bin without activating it: prefer the meltano
    # next to this interpreter so the same environment runs the pipeline.
    candidate = Path(sys.executable).with_name("meltano")
    return str(candidate) if candidate.exists() else "meltano"


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(
            f"{name}={raw!r} is not a number: set it to seconds, e.g. {name}={default:g}"
        ) from None
    if value < minimum:
        raise SettingsError(
            f"{name}={raw} is below {minimum:g}: set it to at least {minimum:g} seconds"
        )
    return value


def _command(env: Mapping[str, str], name: str, default: list[str]) -> list[str]:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        parts = shlex.split(raw)
    except ValueError as exc:
        raise SettingsError(
            f"{name} cannot be split into a command ({exc}): quote it like a shell line"
        ) from None
    return parts


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment."""

    # repr=False: a Settings object in a log line or traceback must not print secrets.
    webhook_secret: str | None = field(repr=False)
    database_url: str | None = field(repr=False)
    project_root: Path
    sync_command: list[str]
    full_sync_command: list[str]
    # Each run's whole output, one file per run (`meltano run` keeps none itself).
    log_dir: Path
    # What the run command sees: the process environment over `.env`, as meltano would merge them.
    child_env: dict[str, str] = field(repr=False, default_factory=dict)
    # A burst is over when no event arrived for this long...
    debounce_seconds: float = 5.0
    # ...but a steady stream of events must not postpone the run forever: the
    # issue wants a changed card in PostgreSQL within a minute at 5 events/s,
    # and this wait plus a run's time to load the cards (~25 s measured at
    # 1,000 cards) must fit in it (bench/service_webhook_latency.py).
    max_delay_seconds: float = 15.0
    history_size: int = 50
    warnings: list[str] = field(default_factory=list)

    @property
    def sync_enabled(self) -> bool:
        return self.webhook_secret is not None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, project_root: Path | None = None
    ) -> Settings:
        process_env = dict(os.environ if environ is None else environ)
        root = Path(process_env.get("KAITEN_PROJECT_ROOT") or project_root or Path.cwd()).resolve()
        env: dict[str, str] = {}
        dotenv_file = root / ".env"
        if dotenv_file.is_file():
            env.update({k: v for k, v in dotenv_values(dotenv_file).items() if v is not None})
        env.update(process_env)

        warnings: list[str] = []
        secret = env.get("KAITEN_WEBHOOK_SECRET", "").strip() or None
        if secret is None:
            warnings.append(
                "KAITEN_WEBHOOK_SECRET is not set: /api/sync*, /admin/sync and the webhook URL "
                f"are DISABLED. Set it in .env (e.g. `{GENERATE_SECRET}`)."
            )
        elif secret.lower().startswith(EXAMPLE_SECRET_PREFIXES):
            raise SettingsError(
                "KAITEN_WEBHOOK_SECRET is still the example value from .env.example or the "
                "setup guide: anyone could use it. Replace it with a random one, "
                f"e.g. `{GENERATE_SECRET}`"
            )
        elif len(secret) < MIN_SECRET_LENGTH:
            raise SettingsError(
                f"KAITEN_WEBHOOK_SECRET is too short ({len(secret)} characters): use at least "
                f"{MIN_SECRET_LENGTH}, e.g. `{GENERATE_SECRET}`"
            )

        meltano = _default_meltano()
        debounce = _number(env, "KAITEN_SERVICE_DEBOUNCE_SECONDS", 5.0, 0.0)
        max_delay = _number(env, "KAITEN_SERVICE_MAX_DELAY_SECONDS", 15.0, 0.0)
        if max_delay < debounce:
            raise SettingsError(
                f"KAITEN_SERVICE_MAX_DELAY_SECONDS ({max_delay:g}) is below "
                "KAITEN_SERVICE_DEBOUNCE_SECONDS "
                f"({debounce:g}): the longest wait cannot be shorter than the quiet period"
            )
        return cls(
            webhook_secret=secret,
            database_url=env.get("DATABASE_URL", "").strip() or None,
            project_root=root,
            # JSON logs: the only format in which Meltano keeps each metric's stream name.
            sync_command=_command(
                env,
                "KAITEN_SERVICE_SYNC_COMMAND",
                [meltano, "--log-format=json", "run", "kaiten-sync"],
            ),
            # A job cannot carry run flags: the full refresh is asked for on the command line.
            full_sync_command=_command(
                env,
                "KAITEN_SERVICE_FULL_SYNC_COMMAND",
                [meltano, "--log-format=json", "run", "--full-refresh", "kaiten-full-sync"],
            ),
            log_dir=Path(
                env.get("KAITEN_SERVICE_LOG_DIR") or root / ".meltano" / "logs" / "sync-service"
            ),
            debounce_seconds=debounce,
            max_delay_seconds=max_delay,
            child_env=env,
            warnings=warnings,
        )
