"""The README's settings table is `tap-kaiten --about --format=markdown`, not hand-typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- about:start -->\n", "<!-- about:end -->"
TAP_BIN = Path(sys.executable).with_name("tap-kaiten")


def about_markdown() -> str:
    return subprocess.run(
        [str(TAP_BIN), "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def embedded_about(text: str) -> str:
    return text.split(START, 1)[1].split(END, 1)[0]


def test_readme_embeds_the_current_about_output():
    assert embedded_about(README.read_text()) == about_markdown(), (
        "README.md is stale: run `python tap-kaiten/tests/test_tap_readme.py --write`"
    )


if __name__ == "__main__" and "--write" in sys.argv:
    text = README.read_text()
    head, rest = text.split(START, 1)
    README.write_text(head + START + about_markdown() + END + rest.split(END, 1)[1])
