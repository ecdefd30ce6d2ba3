"""Regenerate the README's settings and streams tables (`make readme`).

Settings come from `tap-kaiten --about --format=markdown` (the tap's own settings; the
SDK's generic ones are listed in tap-kaiten/README.md), with the variable Meltano reads
each from. Streams are the table in tap-kaiten/README.md, which the tap keeps next to
its code. `--check` exits 1 when README.md is stale (tests/pipeline/test_readme.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from kaiten_local.postgres import ROOT

README = ROOT / "README.md"
TAP_README = ROOT / "tap-kaiten" / "README.md"
# The SDK's generic settings start here in --about; ours come before.
FIRST_SDK_SETTING = "stream_maps"
# Meltano reads these two from the names users already have (meltano.yml `env:`).
ENV_OVERRIDES = {"api_url": "KAITEN_API_URL", "api_token": "KAITEN_API_TOKEN"}


def _tap_executable() -> str:
    candidate = Path(sys.executable).parent / "tap-kaiten"
    return str(candidate) if candidate.exists() else "tap-kaiten"


def settings_table() -> str:
    about = subprocess.run(  # noqa: S603 - our own tap
        [_tap_executable(), "--about", "--format=markdown"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [line for line in about.splitlines() if line.startswith("| ")]
    header, body = rows[0], rows[1:]
    out = [
        "| Setting | Variable | Required | Default | Description |",
        "|:--|:--|:--:|:--:|:--|",
    ]
    for line in body:
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        name = cells[0]
        if name == FIRST_SDK_SETTING:
            break
        variable = ENV_OVERRIDES.get(name, f"TAP_KAITEN_{name.upper()}")
        out.append(f"| `{name}` | `{variable}` | {' | '.join(cells[1:])} |")
    assert header.startswith("| Setting"), "unexpected --about format"
    return "\n".join(out)


def streams_table() -> str:
    text = TAP_README.read_text()
    section = text.split("## Streams", 1)[1]
    lines = []
    for line in section.splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    return "\n".join(lines)


def render(readme: str) -> str:
    for name, table in (("settings", settings_table()), ("streams", streams_table())):
        pattern = re.compile(
            rf"(<!-- {name}:start[^>]*-->\n)(?:.*?\n)?(<!-- {name}:end -->)", flags=re.DOTALL
        )
        if not pattern.search(readme):
            raise SystemExit(
                f"README.md has no <!-- {name}:start --> ... <!-- {name}:end --> block"
            )
        readme = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), readme)
    return readme


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    current = README.read_text()
    fresh = render(current)
    if "--check" in args:
        if fresh != current:
            print("README.md tables are stale: run make readme", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
