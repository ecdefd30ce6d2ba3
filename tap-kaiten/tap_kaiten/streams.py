"""One stream class per Kaiten endpoint."""

from __future__ import annotations

import contextlib
import datetime
import functools
import typing as t
from dataclasses import dataclass

from singer_sdk import typing as th
from singer_sdk.helpers._catalog import pop_deselected_record_properties
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.pagination import BaseAPIPaginator, SinglePagePaginator
from singer_sdk.streams import core as _sdk_stream_core
from typing_extensions import override

from tap_kaiten.client import (
    KaitenNotFoundError,
    KaitenStream,
    Prefetcher,
    format_datetime,
    parse_datetime,
    records_of,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import requests
    from singer_sdk.helpers.types import Context


def _pop_deselected_if_any(record: dict, schema: dict, mask: t.Any, *breadcrumb: t.Any) -> None:
    """The SDK's pruning of deselected fields, skipped when the selection drops nothing.

    The SDK walks every field of every record, nested objects included, to pop the
    deselected ones: a fifth of the tap's CPU on cards (issue #7). A mask whose entries
    are all True (every field selected: `cards.*`, `*.*`) can pop nothing, since a field
    without an entry takes its parent's value and the stream's root is selected.
    """
    everything = getattr(mask, "_kaiten_selects_everything", None)
    if everything is None:
        everything = all(mask.values())
        with contextlib.suppress(AttributeError):  # a SelectionMask, built once per stream
            mask._kaiten_selects_everything = everything
    if not everything:
        pop_deselected_record_properties(record, schema, mask, *breadcrumb)


_sdk_stream_core.pop_deselected_record_properties = _pop_deselected_if_any  # type: ignore[assignment]

# ---------------------------------------------------------------- shared schema fragments
ID = th.IntegerType
TS = th.DateTimeType  # Kaiten sends UTC `YYYY-MM-DDTHH:MM:SS.mmmZ`; emitted unchanged

# Arrays of objects are declared without `items`: MeltanoLabs target-postgres then
# creates one `jsonb` column; with typed items it would create `jsonb[]`.
JSON_ARRAY = th.CustomType({"type": ["array", "null"]})
ID_ARRAY = th.ArrayType(th.IntegerType)
# A free-form object (custom properties, settings): lands as jsonb, kept whole.
JSON_OBJECT = th.ObjectType(additional_properties=True)

EXTRA_FIELDS = th.Property(
    "extra_fields",
    JSON_OBJECT,
    description=(
        "Fields Kaiten returned that this schema does not list yet, kept as JSON "
        "instead of being dropped."
    ),
)


def _obj(*properties: th.Property) -> th.ObjectType:
    # Nested objects keep unknown keys: they are stored whole as jsonb.
    return th.ObjectType(*properties, additional_properties=True)


USER_SHORT = _obj(
    th.Property("id", ID),
    th.Property("uid", th.StringType),
    th.Property("full_name", th.StringType),
    th.Property("username", th.StringType),
    th.Property("email", th.StringType),
    th.Property("avatar_initials_url", th.StringType),
    th.Property("avatar_uploaded_url", th.StringType),
    th.Property("initials", th.StringType),
    th.Property("avatar_type", th.IntegerType),
    th.Property("activated", th.BooleanType),
    th.Property("virtual", th.BooleanType),
)
ENTITY_SHORT = _obj(
    th.Property("id", ID),
    th.Property("uid", th.StringType),
    th.Property("title", th.StringType),
)
COLUMN_SHORT = _obj(
    th.Property("id", ID),
    th.Property("uid", th.StringType),
    th.Property("title", th.StringType),
    th.Property("sort_order", th.NumberType),
    th.Property("type", th.IntegerType),
    th.Property("board_id", ID),
    th.Property("column_id", ID),
    th.Property("wip_limit", th.IntegerType),
    th.Property("col_count", th.IntegerType),
    th.Property("parent", JSON_OBJECT),
)


def _schema(*properties: th.Property) -> dict:
    return th.PropertiesList(*properties, EXTRA_FIELDS).to_dict()


# ---------------------------------------------------------------- full-table streams
class SpacesStream(KaitenStream):
    """Spaces visible to the token; `/spaces` also embeds their boards (see BoardsStream)."""

    name = "spaces"
    path = "/spaces"
    primary_keys = ("id",)
    replication_key = None
    page_size = None
    schema = _schema(
        th.Property("id", ID, required=True),
        th.Property("uid", th.StringType),
        th.Property("title", th.StringType),
        th.Property("created", TS),
        th.Property("updated", TS),
        th.Property("archived", th.BooleanType),
        th.Property("access", th.StringType),
        th.Property("for_everyone_access_role_id", th.StringType),
        th.Property("entity_type", th.StringType),
        th.Property("path", th.StringType, description="Dot-separated ids of the nesting path."),
        th.Property("sort_order", th.NumberType),
        th.Property("parent_entity_uid", th.StringType),
        th.Property("company_id", ID),
        th.Property("allowed_card_type_ids", ID_ARRAY),
        th.Property("external_id", th.StringType),
        th.Property("settings", JSON_OBJECT),
        th.Property("author_uid", th.StringType),
        th.Property("description", th.StringType),
    )

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        return self.complete_read(self.spaces_with_boards())

    @override
    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        # Boards are rows of their own table; the cached payload must stay intact.
        row = {key: value for key, value in row.items() if key != "boards"}
        return super().post_process(row, context)


class BoardsStream(KaitenStream):
    """Boards, one row per board, with every space it is placed in.

    `/spaces` lists each space's boards (short form): that gives the placements. The
    full boards come from `/spaces/{id}/boards`, asked only for spaces with a board not
    read yet; their embedded columns and lanes feed those streams without more requests.
    A board listed in `/spaces` but missing there keeps its short form.
    """

    name = "boards"
    path = "/spaces/{space_id}/boards"
    primary_keys = ("id",)
    replication_key = None
    page_size = None
    not_found_is_empty = True  # a space deleted meanwhile: its boards keep the short form
    schema = _schema(
        th.Property("id", ID, required=True),
        th.Property("uid", th.StringType),
        th.Property("title", th.StringType),
        th.Property("space_id", ID),
        th.Property(
            "space_ids",
            ID_ARRAY,
            description="Every space the board is placed in (board-space is many-to-many).",
        ),
        th.Property("external_id", th.StringType),
        th.Property("sort_order", th.NumberType),
        th.Property("top", th.IntegerType),
        th.Property("left", th.IntegerType),
        th.Property("type", th.IntegerType),
        th.Property("description", th.StringType),
        th.Property("created", TS),
        th.Property("updated", TS),
        th.Property("default_card_type_id", ID),
        th.Property("card_properties", JSON_ARRAY),
        th.Property("cell_wip_limits", JSON_ARRAY),
        th.Property("email_key", th.StringType),
        th.Property("archived", th.BooleanType),
        th.Property("company_id", ID),
        th.Property("move_parents_to_done", th.BooleanType),
        th.Property("default_tags", JSON_ARRAY),
        th.Property("first_image_is_cover", th.BooleanType),
        th.Property("reset_lane_spent_time", th.BooleanType),
        th.Property("backward_moves_enabled", th.BooleanType),
        th.Property("auto_assign_enabled", th.BooleanType),
        th.Property("automove_cards", th.BooleanType),
    )

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        # Columns and lanes of every board are read in this pass too.
        return self.complete_read(self._all_boards(), children=self.child_streams)

    def _all_boards(self) -> Iterable[dict]:
        spaces = self.spaces_with_boards()
        placements: dict[int, list[int]] = {}
        short_forms: dict[int, dict] = {}
        for space in spaces:
            for board in space.get("boards") or []:
                in_spaces = placements.setdefault(board["id"], [])
                if space["id"] not in in_spaces:
                    in_spaces.append(space["id"])
                short_forms.setdefault(board["id"], board)
        done: set[int] = set()
        for space in spaces:
            if all(board["id"] in done for board in space.get("boards") or []):
                continue
            for board in self._full_boards(space["id"]):
                if board["id"] in done:
                    continue
                done.add(board["id"])
                parts = {key: board.pop(key) for key in ("columns", "lanes") if key in board}
                self.run_state.board_parts[board["id"]] = parts
                board.pop("cards", None)
                yield {**board, "space_ids": placements.get(board["id"], [space["id"]])}
        for board_id, board in short_forms.items():
            if board_id not in done:
                yield {**board, "space_ids": placements[board_id]}

    def _full_boards(self, space_id: int) -> list[dict]:
        try:
            return list(super().get_records({"space_id": space_id}))
        except KaitenNotFoundError:
            self.logger.warning("boards: space %s vanished during the sync", space_id)
            return []

    @override
    def get_child_context(self, record: dict, context: Context | None) -> dict:
        return {"board_id": record["id"]}


class ColumnsStream(KaitenStream):
    """Columns of each board, subcolumns flattened into rows with their parent `column_id`."""

    name = "columns"
    path = "/boards/{board_id}/columns"
    primary_keys = ("id",)
    replication_key = None
    parent_stream_type = BoardsStream
    state_partitioning_keys: t.ClassVar[list[str]] = []
    page_size = None
    not_found_is_empty = True
    schema = _schema(
        th.Property("id", ID, required=True),
        th.Property("uid", th.StringType),
        th.Property("title", th.StringType),
        th.Property("board_id", ID),
        th.Property(
            "column_id", ID, description="Parent column for a subcolumn; null for a top column."
        ),
        th.Property("sort_order", th.NumberType),
        th.Property("type", th.IntegerType, description="1 queue, 2 in progress, 3 done."),
        th.Property("wip_limit", th.IntegerType),
        th.Property("wip_limit_type", th.IntegerType),
        th.Property("col_count", th.IntegerType),
        th.Property("archive_after_days", th.IntegerType, description="-1: off."),
        th.Property("rules", th.IntegerType),
        th.Property("pause_sla", th.BooleanType),
        th.Property("external_id", th.StringType),
        th.Property("created", TS),
        th.Property("updated", TS),
    )

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        return flatten_columns(super().parse_response(response))

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        embedded = embedded_part(self, context, "columns")
        if embedded is not None:
            yield from flatten_columns(embedded)
            return
        try:
            yield from super().get_records(context)
        except KaitenNotFoundError:
            self.logger.warning("columns: board %s vanished during the sync", context)


class LanesStream(KaitenStream):
    """Lanes (swimlanes) of each board, archived ones included (`condition` 2)."""

    name = "lanes"
    path = "/boards/{board_id}/lanes"
    primary_keys = ("id",)
    replication_key = None
    parent_stream_type = BoardsStream
    state_partitioning_keys: t.ClassVar[list[str]] = []
    page_size = None
    not_found_is_empty = True
    schema = _schema(
        th.Property("id", ID, required=True),
        th.Property("uid", th.StringType),
        th.Property("title", th.StringType),
        th.Property("board_id", ID),
        th.Property("sort_order", th.NumberType),
        th.Property("row_count", th.IntegerType),
        th.Property("wip_limit", th.IntegerType),
        th.Property("wip_limit_type", th.IntegerType),
        th.Property("condition", th.IntegerType, description="1 live, 2 archived, 3 deleted."),
        th.Property("default_card_type_id", ID),
        th.Property("external_id", th.StringType),
        th.Property("created", TS),
        th.Property("updated", TS),
    )

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        embedded = embedded_part(self, context, "lanes")
        if embedded is not None:
            yield from embedded
            return
        try:
            yield from super().get_records(context)
        except KaitenNotFoundError:
            self.logger.warning("lanes: board %s vanished during the sync", context)


def flatten_columns(columns: Iterable[dict]) -> Iterable[dict]:
    """Top-level columns and their subcolumns as rows; a subcolumn's `column_id` is its parent."""
    for column in columns:
        subcolumns = column.get("subcolumns") or []
        yield {key: value for key, value in column.items() if key != "subcolumns"}
        for sub in subcolumns:
            yield {**sub, "column_id": sub.get("column_id") or column["id"]}


def embedded_part(stream: KaitenStream, context: Context | None, part: str) -> list[dict] | None:
    """Columns or lanes the board's own answer carried, if it did (used once)."""
    if not context:
        return None
    parts = stream.run_state.board_parts.get(context["board_id"])
    if parts is None or part not in parts:
        return None
    embedded = parts.pop(part)
    if not parts:
        del stream.run_state.board_parts[context["board_id"]]
    return embedded


class _WholeTableStream(KaitenStream):
    """A list endpoint read in full on every run."""

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        return self.complete_read(super().get_records(context))


class UsersStream(_WholeTableStream):
    """Users visible to the token, inactive ones included."""

    name = "users"
    path = "/users"
    primary_keys = ("id",)
    replication_key = None
    schema = _schema(
        th.Property("id", ID, required=True),
        th.Property("uid", th.StringType),
        th.Property("full_name", th.StringType),
        th.Property("username", th.StringType),
        th.Property("email", th.StringType),
        th.Property("avatar_initials_url", th.StringType),
        th.Property("avatar_uploaded_url", th.StringType),
        th.Property("initials", th.StringType),
        th.Property("avatar_type", th.IntegerType),
        th.Property("lng", th.StringType),
        th.Property("timezone", th.StringType),
        th.Property("theme", th.StringType),
        th.Property("activated", th.BooleanType),
        th.Property("virtual", th.BooleanType),
        th.Property("role", th.IntegerType),
        th.Property("email_blocked", th.StringType),
        th.Property("email_frequency", th.IntegerType),
        th.Property("email_settings", JSON_OBJECT),
        th.Property("ui_version", th.IntegerType),
        th.Property("external", th.BooleanType),
        th.Property("company_id", ID),
        th.Property("default_space_id", ID),
        th.Property("permissions", JSON_OBJECT),
        th.Property("settings", JSON_OBJECT),
        th.Property("created", TS),
        th.Property("updated", TS),
    )

    @override
    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict:
        return {**super().get_url_params(context, next_page_token), "include_inactive": "true"}


class TagsStream(_WholeTableStream):
    """Tags (Kaiten lists only tags that sit on at least one card)."""

    name = "tags"
    path = "/tags"
    primary_keys = ("id",)
    replication_key = None
    schema = _schema(
        th.Property("id", ID, required=True),
        th.Property("uid", th.StringType),
        th.Property("name", th.StringType),
        th.Property("color", th.IntegerType),
        th.Property("archived", th.BooleanType),
        th.Property("company_id", ID),
        th.Property("created", TS),
        th.Property("updated", TS),
    )


class CardTypesStream(_WholeTableStream):
    """Card types."""

    name = "card_types"
    path = "/card-types"
    primary_keys = ("id",)
    replication_key = None
    schema = _schema(
        th.Property("id", ID, required=True),
        th.Property("uid", th.StringType),
        th.Property("name", th.StringType),
        th.Property("letter", th.StringType),
        th.Property("color", th.IntegerType),
        th.Property("archived", th.BooleanType),
        th.Property("company_id", ID),
        th.Property("properties", JSON_OBJECT),
        th.Property("suggest_fields", th.BooleanType),
        th.Property("description_template", th.StringType),
        th.Property("created", TS),
        th.Property("updated", TS),
    )


class CustomPropertiesStream(_WholeTableStream):
    """Company custom properties, with their select values."""

    name = "custom_properties"
    path = "/company/custom-properties"
    primary_keys = ("id",)
    replication_key = None
    page_size = 500  # this endpoint's cap
    schema = _schema(
        th.Property("id", ID, required=True),
        th.Property("uid", th.StringType),
        th.Property("name", th.StringType),
        th.Property("type", th.StringType),
        th.Property("condition", th.StringType),
        th.Property("multi_select", th.BooleanType),
        th.Property("multiline", th.BooleanType),
        th.Property("values_type", th.StringType),
        th.Property("values_creatable_by_users", th.BooleanType),
        th.Property("show_on_facade", th.BooleanType),
        th.Property("fields_settings", JSON_OBJECT),
        th.Property("author_id", ID),
        th.Property("company_id", ID),
        th.Property("external_id", th.StringType),
        th.Property("data", JSON_OBJECT),
        th.Property("values", JSON_ARRAY, description="Select values (select properties)."),
        th.Property("created", TS),
        th.Property("updated", TS),
    )

    @override
    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict:
        return {**super().get_url_params(context, next_page_token), "include_values": "true"}


# ---------------------------------------------------------------- cards (incremental)
ONE_MS = datetime.timedelta(milliseconds=1)
# Offset pages inside a tie group overlap by this many rows. Finding the previous
# page's last row again proves that nothing before us left the result set in between
# (a card edited meanwhile drops out: updated_before is the sync's start); if it is
# missing, the rows shifted and we ask again from the last card emitted.
OFFSET_OVERLAP = 10
# A group of cards sharing one millisecond can only be walked by offset; if it keeps
# shifting under us we stop restarting it and accept the overlap's protection.
MAX_RESTARTS = 3


def _ms(timestamp: str) -> int:
    return int(parse_datetime(timestamp).timestamp() * 1000)


def _key(card: dict) -> tuple[int, int]:
    return (_ms(card["updated"]), card["id"])


@dataclass(frozen=True)
class CardsPage:
    """Where the next /cards request starts.

    `anchor_ms`: the query asks for updated_after = anchor - 1 ms, which includes the
    anchor millisecond whether Kaiten's `updated_after` is strict or inclusive.
    `cursor`: (updated ms, id) of the last card handed on; anything <= is skipped.
    `last_row`: the previous page's last row, expected again in this page's overlap.
    """

    anchor_ms: int | None
    offset: int
    cursor: tuple[int, int] | None
    last_row: tuple[int, int] | None = None
    restarts: int = 0


class CardsPaginator(BaseAPIPaginator[CardsPage]):
    """Keyset paging on (updated, id); offset paging only inside a millisecond tie group.

    Each page re-anchors `updated_after` on the last card read. A page entirely inside
    the anchor millisecond is followed by offset (overlapping pages, verified); a tie
    group that shifted under us is read again from the last card emitted.
    """

    def __init__(self, start_value: CardsPage, page_size: int) -> None:
        super().__init__(start_value)
        self.page_size = page_size

    @override
    def has_more(self, response: requests.Response) -> bool:
        return _shifted(response) or len(records_of(response)) >= self.page_size

    @override
    def continue_if_empty(self, response: requests.Response) -> bool:
        # A full page whose cards were all seen already (a big tie group, the cards
        # at the bookmark) or a page dropped as shifted is no sign of the end.
        return self.has_more(response)

    @override
    def get_next(self, response: requests.Response) -> CardsPage | None:
        return following_page(self.current_value, response, self.page_size)


def following_page(page: CardsPage, response: requests.Response, page_size: int) -> CardsPage:
    """The page after `page`, given its answer (the paginator's rule; also for prefetch)."""
    if _shifted(response):
        anchor = page.cursor[0] if page.cursor else page.anchor_ms
        restarts = page.restarts + 1 if anchor == page.anchor_ms else 0
        return CardsPage(anchor, 0, page.cursor, None, restarts)
    last_row = _key(records_of(response)[-1])
    cursor = max(page.cursor, last_row) if page.cursor else last_row
    if last_row[0] == page.anchor_ms:
        # The whole page sits in the anchor millisecond: re-anchoring would ask
        # the same question again, so walk this tie group by offset.
        step = page_size - OFFSET_OVERLAP
        return CardsPage(page.anchor_ms, page.offset + step, cursor, last_row, page.restarts)
    return CardsPage(last_row[0], 0, cursor)


def rows_of_page(page: CardsPage, records: list[dict]) -> list[dict] | None:
    """The cards of a page to hand on (past the cursor); None if the rows shifted."""
    if (
        page.last_row is not None
        and page.restarts < MAX_RESTARTS
        and not any(_key(record) == page.last_row for record in records)
    ):
        return None
    cursor = page.cursor
    return [record for record in records if cursor is None or _key(record) > cursor]


def _shifted(response: requests.Response) -> bool:
    return bool(getattr(response, "kaiten_shifted", False))


@dataclass(frozen=True)
class _At:
    """A paginator stand-in for the SDK's request builder: only the page is read."""

    current_value: CardsPage


class CardsStream(KaitenStream):
    """Cards, live and archived, incremental on `updated`.

    Two partitions: `condition=1` (live) and `condition=2&archived=true` (archived),
    which is right whether `archived=true` means "only archived" or "live and
    archived". Requests are ordered by `updated,id` and bounded above by the sync's
    start, so cards edited while we page are left for the next run.
    """

    name = "cards"
    path = "/cards"
    primary_keys = ("id",)
    replication_key = "updated"
    is_sorted = True
    _full_read = False
    schema = _schema(
        th.Property("id", ID, required=True),
        th.Property("uid", th.StringType),
        th.Property("title", th.StringType),
        th.Property("description", th.StringType),
        th.Property("state", th.IntegerType, description="1 queued, 2 in progress, 3 done."),
        th.Property("condition", th.IntegerType, description="1 live, 2 archived."),
        th.Property("archived", th.BooleanType),
        th.Property("asap", th.BooleanType),
        th.Property("due_date", TS),
        th.Property("due_date_time_present", th.BooleanType),
        th.Property("created", TS),
        th.Property("updated", TS),
        th.Property("board_id", ID),
        th.Property("column_id", ID),
        th.Property("lane_id", ID),
        th.Property(
            "space_id",
            ID,
            description="The space of the card's board (from path_data; Kaiten has no such field).",
        ),
        th.Property("sort_order", th.NumberType),
        th.Property("fifo_order", th.IntegerType),
        th.Property("owner_id", ID),
        th.Property("type_id", ID),
        th.Property("updater_id", ID),
        th.Property("version", th.IntegerType),
        th.Property("size", th.NumberType),
        th.Property("size_unit", th.StringType),
        th.Property("size_text", th.StringType),
        th.Property("sprint_id", ID),
        th.Property("external_id", th.StringType),
        th.Property("source", th.StringType),
        th.Property("key", th.StringType),
        th.Property("public", th.BooleanType),
        th.Property("share_id", th.StringType),
        th.Property("share_settings", JSON_OBJECT),
        th.Property("blocked", th.BooleanType),
        th.Property("blocking_card", th.BooleanType),
        th.Property("blockers", JSON_ARRAY),
        th.Property("last_moved_at", TS),
        th.Property("lane_changed_at", TS),
        th.Property("column_changed_at", TS),
        th.Property("first_moved_to_in_progress_at", TS),
        th.Property("last_moved_to_done_at", TS),
        th.Property("completed_at", TS),
        th.Property("completed_on_time", th.BooleanType),
        th.Property("planned_start", th.DateType),
        th.Property("planned_end", th.DateType),
        th.Property("comments_total", th.IntegerType),
        th.Property("comment_last_added_at", TS),
        th.Property("time_spent_sum", th.IntegerType, description="Minutes."),
        th.Property("time_blocked_sum", th.IntegerType, description="Minutes."),
        th.Property("estimate_workload", th.NumberType),
        th.Property("parents_ids", ID_ARRAY),
        th.Property("children_ids", ID_ARRAY),
        th.Property("parents_count", th.IntegerType),
        th.Property("children_count", th.IntegerType),
        th.Property("children_done", th.IntegerType),
        th.Property("goals_total", th.IntegerType),
        th.Property("goals_done", th.IntegerType),
        th.Property("tag_ids", ID_ARRAY),
        th.Property(
            "properties",
            JSON_OBJECT,
            description="Custom property values keyed id_<property id>, kept whole.",
        ),
        th.Property("email", th.StringType),
        th.Property("service_id", ID),
        th.Property("external_user_emails", th.StringType),
        th.Property("has_blocked_children", th.BooleanType),
        th.Property("description_filled", th.BooleanType),
        th.Property("counters_recalculated_at", TS),
        th.Property("cardRole", th.IntegerType),
        th.Property("expires_later", th.BooleanType),
        th.Property("sd_new_comment", th.BooleanType),
        th.Property("import_id", ID),
        th.Property("owner_email", th.StringType),
        th.Property("owner", USER_SHORT),
        th.Property("type", JSON_OBJECT),
        th.Property("board", JSON_OBJECT),
        th.Property("column", COLUMN_SHORT),
        th.Property("lane", JSON_OBJECT),
        th.Property("members", JSON_ARRAY, description="Users on the card; type 2 = responsible."),
        th.Property("tags", JSON_ARRAY),
        th.Property(
            "checklists",
            JSON_ARRAY,
            description=(
                "From GET /cards/{id} (the /cards list leaves them out) when checklists_total > 0; "
                "see the include_checklists setting."
            ),
        ),
        th.Property("files", JSON_ARRAY),
        th.Property("path_data", JSON_OBJECT),
        th.Property("external_links", JSON_ARRAY),
        th.Property("sd_external_recipients_cc", th.StringType),
        th.Property("sprint_name", th.StringType),
        th.Property("calculated_planned_start", th.DateType),
        th.Property("calculated_planned_end", th.DateType),
        th.Property("blocked_at", TS),
        th.Property("blocker_id", ID),
        th.Property("responsible_id", ID),
        th.Property("members_count", th.IntegerType),
        th.Property("tags_count", th.IntegerType),
        th.Property("files_count", th.IntegerType),
        th.Property("checklists_total", th.IntegerType),
    )

    @property
    @override
    def check_sorted(self) -> bool:
        # lookback_minutes deliberately re-reads cards older than the bookmark.
        return not self.config.get("lookback_minutes")

    @property
    @override
    def partitions(self) -> list[dict]:
        conditions = [1, 2] if self.config.get("include_archived", True) else [1]
        space_ids = self.config.get("space_ids") or [None]
        return [
            {"condition": condition, **({} if space is None else {"space_id": space})}
            for space in space_ids
            for condition in conditions
        ]

    def _floor(self, context: Context | None) -> tuple[datetime.datetime | None, bool]:
        """Lowest `updated` to read, and whether it is exactly the stored bookmark."""
        floor: datetime.datetime | None = None
        from_bookmark = False
        # Read at the partition's start, before this run moves it.
        bookmark = self.get_context_state(context).get("replication_key_value")
        if bookmark:
            lookback = int(self.config.get("lookback_minutes") or 0)
            floor = parse_datetime(str(bookmark)) - datetime.timedelta(minutes=lookback)
            from_bookmark = lookback == 0
        start_date = self.config.get("start_date")
        if start_date:
            start = parse_datetime(start_date)
            if floor is None or start > floor:
                floor, from_bookmark = start, False
        return floor, from_bookmark

    def first_page(self, context: Context | None) -> CardsPage:
        """Where this partition's reading starts, from its bookmark and the settings."""
        floor, from_bookmark = self._floor(context)
        if floor is None:
            return CardsPage(anchor_ms=None, offset=0, cursor=None)
        floor_ms = int(floor.timestamp() * 1000)
        last_id = self.get_context_state(context).get("last_id")
        if from_bookmark and last_id is not None:
            # Resume right after the last card emitted, not after its millisecond.
            return CardsPage(floor_ms, 0, (floor_ms, int(last_id)))
        # Nothing before the floor; cards in the floor millisecond itself are kept.
        return CardsPage(floor_ms, 0, (floor_ms - 1, 2**63))

    @override
    def get_new_paginator(self) -> CardsPaginator:
        self._paginator = CardsPaginator(self.first_page(self._partition), self.page_size or 100)
        return self._paginator

    @override
    def get_url_params(self, context: Context | None, next_page_token: CardsPage | None) -> dict:
        page = next_page_token or self._paginator.current_value
        params: dict[str, t.Any] = {
            "condition": context["condition"] if context else 1,
            "order_by": "updated,id",
            "order_direction": "asc,asc",
            "updated_before": format_datetime(self.sync_upper_bound),
            "additional_card_fields": "description",
            "limit": self.page_size,
            "offset": page.offset,
        }
        if params["condition"] == 2:
            params["archived"] = "true"
        if context and context.get("space_id"):
            params["space_id"] = context["space_id"]
        if page.anchor_ms is not None:
            after = datetime.datetime.fromtimestamp(page.anchor_ms / 1000, tz=datetime.UTC)
            params["updated_after"] = format_datetime(after - ONE_MS)
        return params

    @property
    def sync_upper_bound(self) -> datetime.datetime:
        """The sync's start: the same instant the SDK caps the bookmark at."""
        signpost = self.get_replication_key_signpost(None)
        assert isinstance(signpost, datetime.datetime)
        return signpost

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        page = self._paginator.current_value
        self.log_progress()
        sent_ahead = getattr(response, "kaiten_rows", None)
        if sent_ahead is not None and sent_ahead[0] == page:
            rows = sent_ahead[1]  # worked out (and children sent for) when it arrived
        else:
            rows = rows_of_page(page, records_of(response))
            sent_ahead = None
        if rows is None:
            self.logger.info("cards: rows shifted between two pages; reading on from the cursor")
            response.kaiten_shifted = True  # type: ignore[attr-defined]
        prefetcher = self.run_state.prefetcher
        if prefetcher is not None:
            if sent_ahead is None and rows:
                self._send_card_requests_ahead(prefetcher, rows)
            self._send_next_page_ahead(prefetcher, page, response)
        return rows or []

    def _send_next_page_ahead(
        self, prefetcher: Prefetcher, page: CardsPage, response: requests.Response
    ) -> None:
        """Ask for the next page while this one's cards are handed on.

        The same request the paginator will make next (same rule, same parameters); its
        rows are worked out and their per-card requests queued as soon as it arrives.
        """
        paginator = self._paginator
        if not paginator.has_more(response):
            return
        following = following_page(page, response, paginator.page_size)
        if following == page:
            return  # the SDK stops on a repeated token: nothing to read ahead
        context = self._partition
        prepared = self._prepare_request(context=context, page=_At(following))  # type: ignore[arg-type]

        def fetch() -> requests.Response:
            answer = self.send_ahead(prepared, context)
            rows = rows_of_page(following, records_of(answer))
            if rows:
                self._send_card_requests_ahead(prefetcher, rows)
            answer.kaiten_rows = (following, rows)  # type: ignore[attr-defined]
            return answer

        prefetcher.submit(prepared.url or "", fetch, page=True)

    def _send_card_requests_ahead(self, prefetcher: Prefetcher, rows: list[dict]) -> None:
        """Queue the requests these cards will need, in the order they will be needed.

        Exactly those the sequential path makes: the full card when it has checklists,
        then each selected child stream's request (history; comments if there are any).
        Nothing for a deselected child. A stream map could filter cards (their children
        are then never read): with one, children are read one by one as before.
        """
        with_checklists = self.config.get("include_checklists", True)
        children: list[_CardChildStream] = []
        if isinstance(self.stream_maps[0], SameRecordTransform):
            children = [
                child
                for child in self.child_streams
                if child.selected and isinstance(child, _CardChildStream)
            ]
        for row in rows:
            if with_checklists and "checklists" not in row and row.get("checklists_total") != 0:
                prepared = self.prepare_one(f"/cards/{row['id']}")
                prefetcher.submit(
                    prepared.url or "",
                    functools.partial(self.send_ahead, prepared, None, missing_ok=True),
                )
            if not children:
                continue
            context = self.get_child_context(row, None)
            for child in children:
                if child.has_records(context):
                    prepared = child.prepared_request_for(context)
                    prefetcher.submit(
                        prepared.url or "", functools.partial(child.send_ahead, prepared, context)
                    )

    def is_full_read(self) -> bool:
        """A run that reads every card there is: no bookmark, no floor, no filter."""
        return not (
            self.config.get("start_date")
            or self.config.get("space_ids")
            or not self.config.get("include_archived", True)
            or any(
                self.get_context_state(partition).get("replication_key_value")
                for partition in self.partitions
            )
        )

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        # Only a full read may tell the target which cards (and their history and
        # comments) are gone: an incremental run sees the changed cards alone.
        partitions = self.partitions
        if context == partitions[0]:
            self._full_read = self.is_full_read()
        records = self._read_partition(context)
        if self._full_read and context == partitions[-1]:
            records = self.complete_read(records, children=self.child_streams)
        elif self._full_read:
            for stream in [self, *self.child_streams]:
                stream.start_table_version()  # the version must be on the first record
        yield from records

    @contextlib.contextmanager
    def _requests_ahead(self) -> Iterator[None]:
        """Worker threads for this partition's requests (max_parallel_requests > 1)."""
        workers = self.max_parallel_requests
        if workers <= 1:
            yield
            return
        prefetcher = self.run_state.prefetcher = Prefetcher(workers)
        try:
            yield
        finally:
            self.run_state.prefetcher = None
            prefetcher.close()

    def _read_partition(self, context: Context | None) -> Iterable[dict]:
        self._partition = context  # get_new_paginator() is not given the context
        with self._requests_ahead():
            yield from self._read_cards(context)

    def _read_cards(self, context: Context | None) -> Iterable[dict]:
        state = self.get_context_state(context)
        with_checklists = self.config.get("include_checklists", True)
        for record in super().get_records(context):
            if with_checklists and "checklists" not in record:
                record["checklists"] = self.card_checklists(record)
            yield record
            # The SDK has now written this card and moved the bookmark to its
            # `updated`; the id lets a resumed run skip exactly what was emitted.
            state["last_id"] = record["id"]
            self._records_read += 1  # pages overlap: count cards, not rows
            # Child streams can hold a page of cards for a while: keep reporting.
            self.log_progress()

    def card_checklists(self, card: dict) -> list[dict] | None:
        """Checklists come only with the full card (GET /cards/{id}): ask only if it has any."""
        if card.get("checklists_total") == 0:
            return []
        full = self.fetch_one(f"/cards/{card['id']}")
        return None if full is None else full.get("checklists")

    @override
    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        space = (row.get("path_data") or {}).get("space") or {}
        row.setdefault("space_id", space.get("id"))
        return super().post_process(row, context)

    @override
    def get_child_context(self, record: dict, context: Context | None) -> dict:
        return {"card_id": record["id"], "comments_total": record.get("comments_total")}


class _CardChildStream(KaitenStream):
    """A per-card sub-resource, read only for cards emitted in this run."""

    parent_stream_type = CardsStream
    # One state entry for the stream, not one per card.
    state_partitioning_keys: t.ClassVar[list[str]] = []
    page_size = None
    not_found_is_empty = True

    def has_records(self, context: Context) -> bool:
        """Whether this card needs the request at all (judged from its /cards row)."""
        return True

    def prepared_request_for(self, context: Context) -> requests.PreparedRequest:
        """The request get_records(context) makes (built by the SDK the same way)."""
        return self._prepare_request(context=context, page=SinglePagePaginator())

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        if context is not None and not self.has_records(context):
            return
        try:
            yield from super().get_records(context)
        except KaitenNotFoundError:
            # Deleted between the /cards page and this request: nothing to read.
            self.logger.info("%s: card %s was deleted meanwhile", self.name, context)


class CardLocationHistoryStream(_CardChildStream):
    """Card movements between boards, columns and lanes (flow metrics are built on it)."""

    name = "card_location_history"
    path = "/cards/{card_id}/location-history"
    primary_keys = ("id",)
    replication_key = None
    schema = _schema(
        th.Property("id", th.StringType, required=True),
        th.Property("card_id", ID),
        th.Property("board_id", ID),
        th.Property("column_id", ID),
        th.Property("subcolumn_id", ID),
        th.Property("lane_id", ID),
        th.Property("sprint_id", ID),
        th.Property("author_id", ID),
        th.Property("condition", th.IntegerType),
        th.Property("changed", TS),
        th.Property("author", USER_SHORT),
    )


class CardCommentsStream(_CardChildStream):
    """Comments on cards."""

    name = "card_comments"
    path = "/cards/{card_id}/comments"
    primary_keys = ("id",)
    replication_key = None
    schema = _schema(
        th.Property("id", ID, required=True),
        th.Property("uid", th.StringType),
        th.Property("card_id", ID),
        th.Property("author_id", ID),
        th.Property("text", th.StringType),
        th.Property("type", th.IntegerType, description="1 markdown, 2 html."),
        th.Property("edited", th.BooleanType),
        th.Property("internal", th.BooleanType),
        th.Property("deleted", th.BooleanType),
        th.Property("sd_description", th.BooleanType),
        th.Property("author", USER_SHORT),
        th.Property("created", TS),
        th.Property("updated", TS),
    )

    @override
    def has_records(self, context: Context) -> bool:
        # The card says it has no comments: save the request.
        return context.get("comments_total") != 0
