"""Throw-away Meltano projects that share this checkout's installed plugins.

Tests and benchmarks run `meltano` in one of these, so a developer's `.env`, Meltano's
system database and stored state stay out of them, while the plugin venvs that
`make install` built are reused instead of installed again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from kaiten_local.postgres import ROOT

PLUGIN_KINDS = ("extractors", "loaders", "utilities")
# What a project run needs from the checkout, linked rather than copied.
PROJECT_PARTS = ("plugins", "transform", "tap-kaiten")


class PluginsNotInstalledError(RuntimeError):
    """`make install` has not built the Meltano plugin venvs yet."""


def scratch_project(root: Path) -> Path:
    """Make `root` a Meltano project: this checkout's meltano.yml and code, its plugins."""
    installed = ROOT / ".meltano"
    missing = [kind for kind in PLUGIN_KINDS if not (installed / kind).is_dir()]
    if missing:
        raise PluginsNotInstalledError(
            f"Meltano plugins are not installed ({', '.join(missing)} missing in {installed}): "
            "run make install"
        )
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "meltano.yml", root / "meltano.yml")
    for name in PROJECT_PARTS:
        (root / name).symlink_to(ROOT / name)
    (root / ".meltano").mkdir()
    for kind in PLUGIN_KINDS:
        (root / ".meltano" / kind).symlink_to(installed / kind)
    return root


# Whatever a developer exported must not steer a pipeline under test or benchmark.
_SCRUBBED_PREFIXES = ("KAITEN_", "TAP_KAITEN", "TARGET_POSTGRES", "DBT_", "MELTANO_", "PG")
_SCRUBBED = frozenset({"DATABASE_URL", "TEST_DATABASE_URL"})
MELTANO = str(Path(sys.executable).parent / "meltano")


def clean_environ() -> dict[str, str]:
    """This process's environment without any Kaiten, Meltano, dbt or libpq setting."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in _SCRUBBED and not key.startswith(_SCRUBBED_PREFIXES)
    }


@dataclass
class ScratchProject:
    """A scratch Meltano project (see `scratch_project`) and the settings its runs get."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    def _environ(self, env: dict[str, str] | None) -> dict[str, str]:
        merged = clean_environ() | self.env | (env or {})
        # None in an override removes a setting for that one run.
        return {key: value for key, value in merged.items() if value is not None}

    def run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 600,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`meltano <args>` in this project; the caller judges the outcome."""
        return subprocess.run(  # noqa: S603 - our own meltano; arguments from tests and benchmarks
            [MELTANO, *args],
            cwd=self.root,
            env=self._environ(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=stdin,
        )

    def popen(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        stdout: t.IO[t.Any] | int = subprocess.PIPE,
        stderr: t.IO[t.Any] | int = subprocess.PIPE,
    ) -> subprocess.Popen[str]:
        """`meltano <args>` started in the background, output piped unless told otherwise
        (a caller that polls something else while the run goes on should give files:
        nobody reads a pipe then, and a full pipe would stall the run)."""
        return subprocess.Popen(  # noqa: S603 - our own meltano; arguments from tests and benchmarks
            [MELTANO, *args],
            cwd=self.root,
            env=self._environ(env),
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
