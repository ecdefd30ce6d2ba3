"""target-postgres with a correct soft delete and a faster, UTC-exact upsert.

Two changes to MeltanoLabs target-postgres 0.8.1, everything else (settings, table and
column creation, schema evolution, `_sdc_*` columns, activate_version) is the target's:

1. Soft delete. 0.8.1 marks rows deleted after ACTIVATE_VERSION with an UPDATE whose
   bind parameter is named `version`. SQLAlchemy reserves bind names that equal a column
   name in an UPDATE, and Kaiten cards have their own `version` column, so every soft
   delete of `kaiten.cards` fails with a CompileError. This sink does the same UPDATE
   with SQLAlchemy's anonymous bind names.
2. Loading a batch (issue #7: the target was most of a full sync's time). 0.8.1 COPYs the
   batch into a temp table, INSERTs the rows missing from the table, then UPDATEs every
   matched row, including each row it has just inserted; on the way it serialises every
   jsonb value with simplejson, calls a sanitiser per value and scans every field of every
   record for timestamps. Here: one `INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE`
   (rows that differ only), jsonb through msgspec, the per-column work planned once per
   schema, and Singer lines read with the SDK's msgspec reader (RECORD lines laid out as
   the SDK writes them are decoded in one pass per stream with their jsonb fields kept as
   raw JSON text, which COPY takes as it is). The COPY path of 0.8.1
   also writes an aware datetime into a `timestamp` column as text with its offset, which
   PostgreSQL drops (10:00+03:00 would load as 10:00); here every datetime is converted to
   UTC first, as the INSERT path (session time zone UTC) already did.

It is tied to the pinned release: on any other version it stops with a message, so an
upgrade is a decision (check whether upstream fixed these) rather than a silent change.
Two private singer-sdk methods are overridden, because the SDK has no public hook for
them: `_parse_timestamps_in_record` (planned once per schema) and `_write_state_message`
(held until the rows before it are committed); check both when the SDK changes.

Imported only inside the loader's own virtualenv, where target-postgres is installed.
"""

from __future__ import annotations

import datetime
import decimal
import gc
import sys
import threading
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor
from importlib.metadata import version

import msgspec
import sqlalchemy
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.contrib.msgspec import dec_hook as _SDK_DEC_HOOK
from singer_sdk.contrib.msgspec import decoder as _SINGER_DECODER
from singer_sdk.helpers._compat import (
    date_fromisoformat,
    datetime_fromisoformat,
    time_fromisoformat,
)
from singer_sdk.helpers._typing import (
    get_datelike_property_type,
    handle_invalid_timestamp_in_record,
)
from singer_sdk.singerlib.exceptions import InvalidInputLine
from sqlalchemy.dialects import postgresql
from target_postgres.sinks import PostgresSink
from target_postgres.target import TargetPostgres

if t.TYPE_CHECKING:
    from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum

PINNED = "0.8.1"
UTC = datetime.timezone.utc  # noqa: UP017 - the package still declares Python 3.9
_UTC = ("Z", "+00:00")  # ISO 8601 endings that mean UTC (Kaiten, the SDK's _sdc_* stamps)
_PARSERS = {
    "date-time": datetime_fromisoformat,
    "date": date_fromisoformat,
    "time": time_fromisoformat,
}


def _encode_json(value: object) -> str:
    """jsonb text as the SDK's serialize_json gives it (Decimal as a number, else str)."""
    return _JSON.encode(value).decode()


def _jsonb_text(value: object) -> str:
    """jsonb text of a decoded value, or of one kept as raw JSON by _RecordDecoder."""
    return str(value, "utf-8") if type(value) is msgspec.Raw else _encode_json(value)


def _json_fallback(obj: object) -> object:
    return obj.isoformat(sep="T") if isinstance(obj, datetime.datetime) else str(obj)


_JSON = msgspec.json.Encoder(enc_hook=_json_fallback, decimal_format="number")


class _BatchWriter:
    """Writes batches to PostgreSQL on one worker thread while the target reads on.

    The SDK drains a full sink synchronously: while a batch is COPYed and merged, the
    target reads no input, so the tap stalls on the pipe (issue #7). Here a full batch
    goes to one worker thread and reading goes on into the next batch, which is handed
    over once the previous one is committed: batches of every sink run one at a time, in
    order, and at most two are in memory. Whatever needs the rows in the database waits
    for the worker first: the next batch, a new sink's table changes, ACTIVATE_VERSION's
    soft delete, the end of the input, and every STATE message the target emits (so a
    bookmark never gets ahead of the rows it covers). A failed batch fails the target at
    the next of those points, before any later STATE.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()

    def submit(self, work: t.Callable[[], None]) -> None:
        with self._lock:
            # The previous batch must be committed first; if it failed, this raises.
            self._reap()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load")
            self._pending.append(self._executor.submit(work))

    def wait(self) -> None:
        with self._lock:
            self._reap()

    def _reap(self) -> None:
        while self._pending:
            self._pending.pop(0).result()  # blocks until done; re-raises the batch's error


BATCHES = _BatchWriter()


class KaitenPostgresSink(PostgresSink):
    """PostgresSink with the soft-delete fix and the single-statement upsert."""

    # --- reading records --------------------------------------------------------------

    def _parse_timestamps_in_record(
        self,
        record: dict,
        schema: dict,
        treatment: DatetimeErrorTreatmentEnum,
    ) -> None:
        # The SDK asks every field of every record whether its schema is date-like (97
        # fields a card); the answer depends on the schema only, so ask once per schema.
        plan = self._datelike_plan(schema)
        properties = plan["properties"]
        if not plan["additional"] and not properties.issuperset(record):
            for key in record.keys() - properties:
                if record[key] is not None and key not in self._warned_missing_fields:
                    self.logger.warning("No schema for record field '%s'", key)
                    self._warned_missing_fields.add(key)
        utc_text_ok = plan["use_copy"]
        for key, kind in plan["datelike"]:
            value = record.get(key)
            if value is None:
                continue
            if utc_text_ok and kind == "date-time" and type(value) is str and value.endswith(_UTC):
                # COPY sends a datetime as text anyway, and PostgreSQL reads this UTC text
                # as the same `timestamp` (a malformed one fails the batch there, as the
                # parse would here): Kaiten's stamps and the _sdc_* ones skip the round trip.
                continue
            try:
                parsed = _PARSERS[kind](value)
                if kind == "date-time" and parsed.tzinfo is not None:
                    # A `timestamp` column holds UTC; COPY text of an aware datetime keeps
                    # its offset, which PostgreSQL drops: convert first.
                    parsed = parsed.astimezone(UTC).replace(tzinfo=None)
                record[key] = parsed
            except ValueError as ex:
                record[key] = handle_invalid_timestamp_in_record(
                    record, [key], value, kind, ex, treatment, self.logger
                )

    def _datelike_plan(self, schema: dict) -> dict[str, t.Any]:
        cached = getattr(self, "_kaiten_datelike", None)
        if cached is not None and cached[0] is schema:
            return cached[1]
        properties = schema["properties"]
        plan = {
            "properties": frozenset(properties),
            "additional": bool(schema.get("additionalProperties", False)),
            # Sink.config builds a new read-only view on every call.
            "use_copy": self.config["use_copy"],
            "datelike": [
                (key, kind)
                for key, prop in properties.items()
                if (kind := get_datelike_property_type(prop)) in _PARSERS
            ],
        }
        self._kaiten_datelike = (schema, plan)
        return plan

    # --- writing a batch --------------------------------------------------------------

    def setup(self) -> None:
        # A new sink (a stream's first or changed schema) may ALTER the table: not while
        # another sink's batch is being written to it.
        BATCHES.wait()
        super().setup()

    def process_batch(self, context: dict[str, t.Any]) -> None:
        BATCHES.submit(lambda: self._write_batch(context))

    def _write_batch(self, context: dict[str, t.Any]) -> None:
        """target-postgres's batch load, with COPY straight into the table when it can.

        A batch none of whose keys is in the table yet (every batch of a first sync) is
        COPYed into the table itself: the staging table and the merge would only copy
        the same rows once more. Otherwise, and for tables without a one-column unique
        key, target-postgres's path: COPY into a temp table, then upsert() below. One
        transaction either way, so a concurrent insert of the same key fails the batch
        on the key's unique index instead of duplicating a row.
        """
        keys = self.key_properties
        if self.append_only or len(keys) != 1:
            PostgresSink.process_batch(self, context)
            return
        with self.connector._connect() as connection, connection.begin():
            table = self.connector.prepare_table(
                full_table_name=self.full_table_name,
                schema=self.schema,
                primary_keys=keys,
                as_temp_table=False,
                connection=connection,
            )
            column = table.c[keys[0]]
            values = list({record[column.name] for record in context["records"]})
            # One array parameter, not an IN list of a batch's worth of bind parameters
            # (compiling and sending 5,000 of them cost ~1 CPU-s per 100,000 cards).
            present = sqlalchemy.bindparam(
                "batch_keys", values, type_=postgresql.ARRAY(column.type)
            )
            if (
                self._has_unique_key(table, keys, connection)
                and not connection.execute(
                    sqlalchemy.select(sqlalchemy.exists().where(column == sqlalchemy.any_(present)))
                ).scalar()
            ):
                self.bulk_insert_records(
                    table=table,
                    schema=self.schema,
                    primary_keys=keys,
                    records=context["records"],
                    connection=connection,
                )
                return
        PostgresSink.process_batch(self, context)

    def clean_up(self) -> None:
        BATCHES.wait()
        super().clean_up()

    def bulk_insert_records(  # type: ignore[override]
        self,
        table: sqlalchemy.Table,
        schema: dict[str, t.Any],
        records: t.Iterable[dict[str, t.Any]],
        primary_keys: t.Sequence[str],
        connection: sqlalchemy.engine.Connection,
    ) -> int | None:
        if not self.config["use_copy"]:
            return super().bulk_insert_records(table, schema, records, primary_keys, connection)
        columns = self.column_representation(schema)
        names = [column.name for column in columns]
        if self.append_only is False:
            # The last record of a key wins, as in target-postgres (ON CONFLICT also
            # refuses to touch one row twice in a statement).
            latest: dict[tuple[t.Any, ...], dict[str, t.Any]] = {}
            for record in records:
                latest[tuple(record[key] for key in primary_keys)] = record
            records = latest.values()
        # jsonb turns None into JSON null, as SQLAlchemy's JSON type (none_as_null=False)
        # does in target-postgres; other columns keep None as SQL NULL.
        always, non_null = [], []
        for i, column in enumerate(columns):
            convert = self._converter(column, connection.dialect)
            if isinstance(column.type, sqlalchemy.JSON):
                always.append((i, convert))
            elif convert is not None:
                non_null.append((i, convert))
        quoted = ", ".join(f'"{name}"' for name in names)
        name = f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'
        statement = f"COPY {name} ({quoted}) FROM STDIN"
        self.logger.info("Inserting with SQL: %s", statement)
        with connection.connection.cursor().copy(statement) as copy:
            for record in records:
                row = list(map(record.get, names))
                for i, convert in always:
                    row[i] = convert(row[i])
                for i, convert in non_null:
                    if row[i] is not None:
                        row[i] = convert(row[i])
                copy.write_row(row)
        return True

    def _converter(
        self, column: sqlalchemy.Column, dialect: sqlalchemy.Dialect
    ) -> t.Callable[[t.Any], t.Any] | None:
        """What a value of this column becomes before COPY; None: the value as it is."""
        sanitize = self.connector.sanitize_null_text_characters
        kind = column.type
        if isinstance(kind, sqlalchemy.JSON):
            if not sanitize:
                return _jsonb_text

            def jsonb(value: t.Any) -> str:
                text = _jsonb_text(value)
                # U+0000 inside jsonb text can only show as the escape \u0000; only then
                # sanitise the way target-postgres does (strings one level down) and encode
                # again. A literal backslash-u0000 only costs a needless second pass.
                if "\\u0000" not in text:
                    return text
                if type(value) is msgspec.Raw:
                    value = _SINGER_DECODER.decode(value)
                return _encode_json(self.sanitize_null_text_characters(value))

            return jsonb
        processor = kind.bind_processor(dialect)
        if isinstance(kind, sqlalchemy.ARRAY) and isinstance(kind.item_type, sqlalchemy.Integer):
            # psycopg looks up a dumper for every list it is given (a Python walk over the
            # items); an array of plain ints has one text form, written here. Anything
            # else goes the way it did.
            other = (
                processor
                if isinstance(kind, _NO_TEXT_TYPES) or not sanitize
                else _compose(_sanitize_value(self), processor)
            )
            return _int_array(other)
        if isinstance(kind, sqlalchemy.DateTime):
            # Values are UTC text or naive UTC datetimes already (_parse_timestamps_in_record).
            return processor
        if isinstance(kind, _NO_TEXT_TYPES) or not sanitize:
            # A string with a NUL can't load into these types whether or not it is
            # sanitised, so the sanitiser is skipped for them.
            return processor
        return _compose(_sanitize_value(self), processor)

    def upsert(
        self,
        from_table: sqlalchemy.Table,
        to_table: sqlalchemy.Table,
        schema: dict[str, t.Any],
        join_keys: t.Sequence[str],
        connection: sqlalchemy.engine.Connection,
    ) -> int | None:
        if self.append_only or not self._has_unique_key(to_table, join_keys, connection):
            # No unique index on the key to conflict on: the target's two statements.
            return super().upsert(from_table, to_table, schema, join_keys, connection)
        statement = postgresql.insert(to_table).from_select(
            [column.name for column in from_table.columns],
            sqlalchemy.select(*from_table.columns),
        )
        updated = [name for name in self.schema["properties"] if name not in join_keys]
        if updated:
            current = sqlalchemy.tuple_(*(to_table.c[name] for name in updated))
            incoming = sqlalchemy.tuple_(*(statement.excluded[name] for name in updated))
            statement = statement.on_conflict_do_update(
                index_elements=list(join_keys),
                set_={name: statement.excluded[name] for name in updated},
                # A re-read row identical to the stored one is left alone (no dead tuple).
                where=current.is_distinct_from(incoming),
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=list(join_keys))
        connection.execute(statement)
        return None

    def _has_unique_key(
        self,
        table: sqlalchemy.Table,
        join_keys: t.Sequence[str],
        connection: sqlalchemy.engine.Connection,
    ) -> bool:
        """Whether a unique index covers exactly the key columns (ON CONFLICT needs one)."""
        cached = getattr(self, "_kaiten_unique_key", None)
        if cached is not None and cached[0] == (table.schema, table.name, tuple(join_keys)):
            return cached[1]
        rows = connection.execute(
            sqlalchemy.text(
                "select array_agg(a.attname::text) from pg_index i"
                " join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)"
                " where i.indrelid = cast(:table as regclass) and i.indisunique"
                " and i.indpred is null and i.indexprs is null group by i.indexrelid"
            ),
            {"table": f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'},
        ).all()
        found = any(set(row[0]) == set(join_keys) for row in rows)
        self._kaiten_unique_key = ((table.schema, table.name, tuple(join_keys)), found)
        return found

    # --- soft delete ------------------------------------------------------------------

    def activate_version(self, new_version: int) -> None:
        # Rows of this version still in memory, or still being written, must be in the
        # table before the rows of older versions go.
        if self._pending_batch:
            draining_status = self.start_drain()
            self.process_batch(draining_status)
            self.mark_drained()
        BATCHES.wait()
        if not self.config.get("activate_version", True) or self.config.get("hard_delete"):
            # The hard delete has no such bind name: the target's own code does it.
            super().activate_version(new_version)
            return
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
                .values({deleted_at: datetime.datetime.now(tz=UTC)})
                .where(
                    sqlalchemy.or_(row_version < new_version, row_version.is_(None)),
                    deleted_at.is_(None),
                )
            )


_NO_TEXT_TYPES = (sqlalchemy.Integer, sqlalchemy.Boolean, sqlalchemy.Numeric, sqlalchemy.Date)


def _compose(
    first: t.Callable[[t.Any], t.Any], then: t.Callable[[t.Any], t.Any] | None
) -> t.Callable[[t.Any], t.Any]:
    return first if then is None else lambda value: then(first(value))


def _int_array(other: t.Callable[[t.Any], t.Any] | None) -> t.Callable[[t.Any], t.Any]:
    """An int list as PostgreSQL's array text `{1,2}`, which COPY reads as the array."""

    def convert(value: t.Any) -> t.Any:
        if type(value) is list and all(type(item) is int for item in value):
            return "{" + ",".join(map(str, value)) + "}"
        return value if other is None else other(value)

    return convert


def _sanitize_value(sink: PostgresSink) -> t.Callable[[t.Any], t.Any]:
    """target-postgres's NUL sanitiser, skipped for the values that can't hold a NUL."""

    def sanitize(value: t.Any) -> t.Any:
        if type(value) is str:
            return value.replace("\x00", "\ufffd") if "\x00" in value else value
        if isinstance(value, (dict, list)):
            return sink.sanitize_null_text_characters(value)
        return value

    return sanitize


_RECORD_START = b'{"type":"RECORD","stream":"'
_UNSET = msgspec.UNSET


class _RecordDecoder:
    """Decodes one stream's RECORD lines in a single pass, jsonb fields left as JSON text.

    A card's nested objects (owner, members, path_data, ...) go to jsonb columns, where
    COPY needs their JSON text again: decoding them into dicts and encoding them back was
    ~30 % of the loader's CPU. Here a struct built from the stream's schema keeps exactly
    those fields as msgspec.Raw (the bytes of the line) and decodes the rest as the SDK's
    decoder does (floats as Decimal). A line this can't take as it is (a field the schema
    lacks, another key order, bad JSON) goes the SDK's way, warnings and errors included.
    """

    def __init__(
        self, stream: str, properties: t.Iterable[str], raw: t.Collection[str], logger: t.Any
    ) -> None:
        self.names = tuple(properties)
        self._announce: t.Callable[[], None] | None = lambda: logger.info(
            "%s: jsonb fields read as raw JSON text (%s)", stream, ", ".join(sorted(raw))
        )
        fields = [
            (f"f{i}", msgspec.Raw if name in raw else t.Any, None)
            for i, name in enumerate(self.names)
        ]
        record = msgspec.defstruct(
            "Record",
            fields,
            rename={f"f{i}": name for i, name in enumerate(self.names)},
            forbid_unknown_fields=True,
        )
        message = msgspec.defstruct(
            "RecordMessage",
            [
                ("type", str),
                ("stream", str),
                ("record", record),
                ("version", t.Any, _UNSET),
                ("time_extracted", t.Any, _UNSET),
            ],
        )
        self._decoder = msgspec.json.Decoder(
            message, dec_hook=_SDK_DEC_HOOK, float_hook=decimal.Decimal
        )

    def decode(self, line: bytes) -> dict | None:
        try:
            decoded = self._decoder.decode(line)
        except msgspec.DecodeError:
            return None
        if self._announce is not None:
            self._announce()
            self._announce = None
        message = {
            "type": decoded.type,
            "stream": decoded.stream,
            "record": dict(zip(self.names, msgspec.structs.astuple(decoded.record), strict=True)),
        }
        if decoded.version is not _UNSET:
            message["version"] = decoded.version
        if decoded.time_extracted is not _UNSET:
            message["time_extracted"] = decoded.time_extracted
        return message


# Set by KaitenTargetPostgres for each stream whose records can keep jsonb as text.
RECORD_DECODERS: dict[bytes, _RecordDecoder] = {}


class _BinaryMsgSpecReader(MsgSpecReader):
    """The SDK's msgspec reader fed bytes: msgspec decodes UTF-8 itself.

    Reading stdin as text costs a UTF-8 decode of every line and msgspec then re-encodes
    any str with non-ASCII text (Russian card titles) to UTF-8 to parse it; bytes skip
    both (~1.5 CPU-s per 100,000 cards). Same messages: the decoder is the SDK's.
    """

    def process_lines(
        self,
        file_input: t.IO[t.Any] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        source = file_input if file_input is not None else sys.stdin
        return super().process_lines(getattr(source, "buffer", source), callbacks)

    def deserialize_json(self, line: str | bytes) -> dict:
        if not isinstance(line, bytes):
            return super().deserialize_json(line)
        if line.startswith(_RECORD_START):
            start = len(_RECORD_START)
            decoder = RECORD_DECODERS.get(line[start : line.find(b'"', start)])
            if decoder is not None and (message := decoder.decode(line)) is not None:
                return message
        try:
            return _SINGER_DECODER.decode(line)  # type: ignore[no-any-return]
        except msgspec.DecodeError as exc:
            # Invalid UTF-8 included: an error, as reading text would have raised.
            text = line.decode(errors="replace")
            msg = f"Unable to parse line as JSON: {text}"
            raise InvalidInputLine(msg) from exc


class KaitenTargetPostgres(TargetPostgres):
    """The MeltanoLabs target, same name and settings, with the sink above."""

    default_sink_class = KaitenPostgresSink
    # The SDK's msgspec reader (same messages, floats as Decimal), reading bytes.
    message_reader_class = _BinaryMsgSpecReader

    def _process_schema_message(self, message_dict: dict) -> None:
        super()._process_schema_message(message_dict)
        stream = message_dict["stream"]
        RECORD_DECODERS.pop(stream.encode(), None)
        # Raw jsonb text only reaches our COPY writer; stream maps and flattening
        # would see msgspec.Raw instead of the value, so they keep the SDK's reading.
        if (
            not self.config.get("use_copy")
            or self.config.get("stream_maps")
            or self.config.get("flattening_enabled")
        ):
            return
        properties = message_dict["schema"]["properties"]
        connector = self.get_sink(stream).connector
        raw = {
            name
            for name, prop in properties.items()
            if isinstance(connector.to_sql_type(prop), sqlalchemy.JSON)
        }
        if raw:
            RECORD_DECODERS[stream.encode()] = _RecordDecoder(stream, properties, raw, self.logger)

    def _write_state_message(self, state: dict) -> None:
        # A bookmark is only passed on once every batch before it is in the database.
        BATCHES.wait()
        super()._write_state_message(state)


def main() -> None:
    installed = version("meltanolabs-target-postgres")
    if installed != PINNED:
        print(
            f"error: kaiten_target_postgres was written for meltanolabs-target-postgres=={PINNED}, "
            f"found {installed}: check whether its soft delete and upsert still need the "
            "changes, then update plugins/kaiten-pgenv",
            file=sys.stderr,
        )
        sys.exit(2)
    # A batch keeps ~500,000 decoded objects alive and none of them is in a reference
    # cycle, yet CPython's default thresholds (700, 10, 10) rescan them for cycles every
    # few thousand allocations: ~3.5 CPU-s per 100,000 cards. Startup objects (SQLAlchemy,
    # the SDK) are frozen out of the scans and young objects are collected less often;
    # cycles are still collected, peak memory is unchanged (measured).
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    KaitenTargetPostgres.cli()
