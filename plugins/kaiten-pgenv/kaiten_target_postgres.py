"""target-postgres with soft deletes that work on tables that have a `version` column.

target-postgres 0.8.1 marks rows deleted after ACTIVATE_VERSION with an UPDATE whose
bind parameter is named `version`. SQLAlchemy reserves bind names that equal a column
name in an UPDATE, and Kaiten cards have their own `version` column, so every soft
delete of `kaiten.cards` fails with a CompileError. This subclass does the same
UPDATE with SQLAlchemy's anonymous bind names; everything else is target-postgres.

It is tied to the pinned release: on any other version it stops with a message, so an
upgrade is a decision (check whether upstream fixed it) rather than a silent change.

Imported only inside the loader's own virtualenv, where target-postgres is installed.
"""

from __future__ import annotations

import datetime
import sys
from importlib.metadata import version

import sqlalchemy
from target_postgres.sinks import PostgresSink
from target_postgres.target import TargetPostgres

PINNED = "0.8.1"


class SoftDeletePostgresSink(PostgresSink):
    """PostgresSink whose soft delete doesn't collide with a column called `version`."""

    def activate_version(self, new_version: int) -> None:
        if not self.config.get("activate_version", True) or self.config.get("hard_delete"):
            super().activate_version(new_version)  # the hard delete has no such bind name
            return
        if self._pending_batch:
            # Rows of this version still in memory must be written before older ones go.
            draining_status = self.start_drain()
            self.process_batch(draining_status)
            self.mark_drained()
        if not self.connector.table_exists(self.full_table_name):
            return
        with self.connector._connect() as connection, connection.begin():
            table = sqlalchemy.Table(
                self.table_name,
                sqlalchemy.MetaData(),
                autoload_with=connection,
                schema=self.schema_name,
            )
            row_version = table.c[self.version_column_name]
            deleted_at = table.c[self.soft_delete_column_name]
            connection.execute(
                sqlalchemy.update(table)
                .values({deleted_at: datetime.datetime.now(tz=datetime.timezone.utc)})
                .where(
                    sqlalchemy.or_(row_version < new_version, row_version.is_(None)),
                    deleted_at.is_(None),
                )
            )


class KaitenTargetPostgres(TargetPostgres):
    """The MeltanoLabs target, same name and settings, with the soft-delete fix."""

    default_sink_class = SoftDeletePostgresSink


def main() -> None:
    installed = version("meltanolabs-target-postgres")
    if installed != PINNED:
        print(
            f"error: kaiten_target_postgres was written for meltanolabs-target-postgres=={PINNED}, "
            f"found {installed}: check whether its soft delete still needs the fix, then update "
            "plugins/kaiten-pgenv",
            file=sys.stderr,
        )
        sys.exit(2)
    KaitenTargetPostgres.cli()
