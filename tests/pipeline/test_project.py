"""The Meltano project itself: settings declared, lock files present, README current."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from kaiten_local.postgres import ROOT
from kaiten_local.readme import FIRST_SDK_SETTING

TAP = str(Path(sys.executable).parent / "tap-kaiten")


def meltano_yml() -> dict:
    return yaml.safe_load((ROOT / "meltano.yml").read_text())


def test_every_tap_setting_is_declared_in_meltano_yml():
    """An undeclared setting can't be set from .env (Meltano maps only declared ones)."""
    about = json.loads(
        subprocess.run(
            [TAP, "--about", "--format=json"], check=True, capture_output=True, text=True
        ).stdout
    )
    names = list(about["settings"]["properties"])
    own = names[: names.index(FIRST_SDK_SETTING)] if FIRST_SDK_SETTING in names else names
    [tap] = meltano_yml()["plugins"]["extractors"]
    declared = {setting["name"]: setting for setting in tap["settings"]}
    assert set(own) <= declared.keys(), (
        f"declare in meltano.yml: {sorted(set(own) - declared.keys())}"
    )
    assert declared["api_token"].get("sensitive") is True
    assert declared["api_url"]["env"] == "KAITEN_API_URL"
    assert declared["api_token"]["env"] == "KAITEN_API_TOKEN"


def test_hub_plugins_are_locked():
    config = meltano_yml()["plugins"]
    for kind, plugin in (("loaders", config["loaders"][0]), ("utilities", config["utilities"][0])):
        lock = ROOT / "plugins" / kind / f"{plugin['name']}--{plugin['variant']}.lock"
        locked = json.loads(lock.read_text())
        assert (locked["name"], locked["variant"]) == (plugin["name"], plugin["variant"])
    assert "meltanolabs-target-postgres==0.8.1" in config["loaders"][0]["pip_url"]


def test_readme_tables_are_current():
    result = subprocess.run(
        [sys.executable, "-m", "kaiten_local.readme", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr + " (run: make readme)"
