"""Throw-away Meltano projects that share this checkout's installed plugins.

Tests and benchmarks run `meltano` in one of these, so a developer's `.env`, Meltano's
system database and stored state stay out of them, while the plugin venvs that
`make install` built are reused instead of installed again.
"""

from __future__ import annotations

import shutil
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
