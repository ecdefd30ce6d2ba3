"""The dbt SQL is linted with sqlfluff (postgres dialect, the project's rules)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from kaiten_local.postgres import ROOT

TRANSFORM = ROOT / "transform"
SQLFLUFF = str(Path(sys.executable).parent / "sqlfluff")


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SQLFLUFF, "lint", "--disable-progress-bar", str(path)],
        cwd=path if path.is_dir() else path.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_transform_sql_passes_sqlfluff() -> None:
    result = lint(TRANSFORM)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    # Every model was linted (not skipped as unparsable or untemplatable).
    assert "TMP" not in result.stdout
    assert "PRS" not in result.stdout


def test_the_lint_rules_catch_a_violation(tmp_path: Path) -> None:
    """The config is the one in transform/ and it really enforces the house style."""
    project = tmp_path / "transform"
    shutil.copytree(TRANSFORM / "macros", project / "macros")
    shutil.copy(TRANSFORM / ".sqlfluff", project / ".sqlfluff")
    (project / "models").mkdir()
    (project / "models" / "bad.sql").write_text(
        "SELECT ID AS Card_Id FROM {{ ref('stg_kaiten__cards') }}\n", encoding="utf-8"
    )
    result = lint(project / "models" / "bad.sql")
    assert result.returncode != 0
    assert "CP01" in result.stdout  # upper-case keywords
