"""The sandbox's workspace: deterministic generation, rendering, /cards queries, mutations.

Cards are kept compact (one slotted object of ints/strings each) and rendered to the
API's JSON shape on demand, so 100,000 cards start in seconds and memory stays
proportional to the data. Everything random comes from ``random.Random`` seeded by the
workspace seed, so the same seed always yields the same workspace.
"""

# Cyrillic text is the point of the test data; random numbers serve determinism, not security.
# ruff: noqa: RUF001, S311

from __future__ import annotations

import contextlib
import gc
import hashlib
import random
import threading
import time
import uuid
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

COMPANY_ID = 1
# Generated history lies in a fixed past window so the workspace does not depend on
# the wall clock; mutations then stamp "now", which is always later.
EPOCH_START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
EPOCH_END_MS = 1_780_272_000_000  # 2026-06-01T00:00:00Z

_WORDS_RU = [
    "Исправить",
    "Добавить",
    "Обновить",
    "Проверить",
    "Согласовать",
    "Подготовить",
    "отчёт",
    "интеграцию",
    "оплату",
    "личный кабинет",
    "экспорт",
    "договор",
    "макет",
    "сервер",
    "документацию",
    "релиз",
    "ёлку",
    "«быстрый» поиск",
]
_WORDS_EN = ["billing", "API", "onboarding", "dashboard", "webhook", "migration", "SSO"]
_EMOJI = ["🚀", "🔥", "✅", "🐛", "📦", "👀", "💡", "⚠️", "🇷🇺", "👩‍💻"]
_QUOTES = ['"кавычки"', "'single'", "«ёлочки»", "back\\slash", "<b>html</b>", "a & b"]
_COLORS = list(range(1, 18))
_FIRST = ["Анна", "Иван", "Мария", "Пётр", "Ольга", "Сергей", "Дарья", "Алексей", "Zoë", "Jean"]
_LAST = ["Иванова", "Смирнов", "Кузнецова", "Попов", "Соколова", "Лебедев", "O'Brien", "Müller"]

# Descriptions are drawn from a fixed pool so a card stores only an index.
_DESCRIPTION_POOL_SIZE = 257


def _build_descriptions(rng: random.Random) -> list[str]:
    pool: list[str] = []
    for i in range(_DESCRIPTION_POOL_SIZE):
        lines = [
            " ".join(rng.choice(_WORDS_RU) for _ in range(rng.randint(3, 12)))
            for _ in range(rng.randint(1, 5))
        ]
        if i % 3 == 0:
            lines.append(rng.choice(_EMOJI) + " " + rng.choice(_QUOTES))
        if i % 5 == 0:
            lines.append("- [ ] пункт\n- [x] готово\n\n```\ncode\t block\n```")
        text = "\n".join(lines)
        if i % 64 == 7:
            # Real descriptions occasionally carry NUL bytes pasted from other tools;
            # PostgreSQL text rejects them, so the pipeline must cope.
            text += "\u0000хвост"
        pool.append(text)
    return pool


_DAY_PREFIX: dict[int, str] = {}
# Lookup tables make timestamp formatting (~14 per card) a few string concatenations.
_CLOCK = [f"{h:02d}:{m:02d}:{sec:02d}." for h in range(24) for m in range(60) for sec in range(60)]
_MILLIS = [f"{ms:03d}Z" for ms in range(1000)]


def fmt_ts(ms: int | None) -> str | None:
    """Kaiten's timestamp shape: ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    if ms is None:
        return None
    day, rest = divmod(ms, 86_400_000)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        t = time.gmtime(day * 86_400)
        prefix = _DAY_PREFIX[day] = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
    seconds, millis = divmod(rest, 1000)
    return prefix + _CLOCK[seconds] + _MILLIS[millis]


def fmt_date(ms: int | None) -> str | None:
    return None if ms is None else fmt_ts(ms)[:10]  # type: ignore[index]


class BadRequest(ValueError):
    """Client error that becomes a 400 with a Kaiten-style ``{"message": ...}`` body."""


def parse_ts_param(name: str, raw: str) -> float:
    """Parse an ISO 8601 query value into epoch milliseconds (fractional, exact to µs)."""
    value = raw.strip()
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "+") if "T" in value else value)
    except ValueError:
        raise BadRequest(
            f"{name} must be an ISO 8601 date-time like 2024-07-25T07:37:34.816Z, got {raw!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp() * 1000.0


class Card:
    """One card's state; rendered to JSON by :meth:`Workspace.render_card`."""

    __slots__ = (
        "archived_flag",
        "asap",
        "blocked",
        "board_id",
        "checklist_n",
        "children_ids",
        "column_changed_at",
        "column_id",
        "comment_last",
        "comments_total",
        "completed_at",
        "created",
        "descr",
        "due_date",
        "external_id",
        "fifo_order",
        "file_n",
        "first_in_progress",
        "history",
        "id",
        "lane_changed_at",
        "lane_id",
        "last_done",
        "last_moved_at",
        "members",
        "owner_id",
        "parents_ids",
        "planned_end",
        "planned_start",
        "props",
        "size",
        "sort_order",
        "state",
        "tag_ids",
        "time_blocked",
        "time_spent",
        "title",
        "type_id",
        "updated",
        "updater_id",
        "version",
    )

    id: int
    title: str
    descr: int  # index into the description pool, -1 for null
    created: int
    updated: int
    board_id: int
    column_id: int
    lane_id: int
    owner_id: int
    type_id: int
    updater_id: int
    state: int
    archived_flag: bool
    version: int
    sort_order: float
    fifo_order: int
    asap: bool
    due_date: int | None
    size: float | None
    external_id: str | None
    blocked: bool
    members: tuple[tuple[int, int], ...]
    tag_ids: tuple[int, ...]
    props: dict[str, Any] | None
    last_moved_at: int
    lane_changed_at: int
    column_changed_at: int
    first_in_progress: int | None
    last_done: int | None
    completed_at: int | None
    planned_start: int | None
    planned_end: int | None
    comments_total: int
    comment_last: int | None
    time_spent: int
    time_blocked: int
    checklist_n: int
    file_n: int
    # (changed_ms, board_id, column_id, lane_id, author_id, condition)
    history: list[tuple[int, int, int, int, int, int]]
    parents_ids: list[int]
    children_ids: list[int]

    @property
    def condition(self) -> int:
        return 2 if self.archived_flag else 1


# Fields /cards can order by, with how to read them from a Card.
ORDER_FIELDS: dict[str, Callable[[Card], Any]] = {
    "id": lambda c: c.id,
    "created": lambda c: c.created,
    "updated": lambda c: c.updated,
    "sort_order": lambda c: c.sort_order,
    "fifo_order": lambda c: c.fifo_order,
    "title": lambda c: c.title,
    "board_id": lambda c: c.board_id,
    "column_id": lambda c: c.column_id,
    "lane_id": lambda c: c.lane_id,
    "owner_id": lambda c: c.owner_id,
    "type_id": lambda c: c.type_id,
    "state": lambda c: c.state,
    "condition": lambda c: c.condition,
    "version": lambda c: c.version,
    "last_moved_at": lambda c: c.last_moved_at,
    "column_changed_at": lambda c: c.column_changed_at,
}


class Workspace:
    """All entities of one generated Kaiten company plus the mutation log."""

    def __init__(self, seed: int = 42, cards: int = 1000, token: str | None = None) -> None:
        if cards < 0:
            raise ValueError("cards must be 0 or more")
        self.seed = seed
        self.lock = threading.RLock()
        self.generation = 0  # bumped on every write; invalidates query caches
        self._query_cache: OrderedDict[tuple[Any, ...], list[Card]] = OrderedDict()
        self._shared_cache: dict[tuple[str, int], dict[str, Any]] = {}
        self._used_tags: tuple[int, list[int]] | None = None
        self._board_cards: tuple[int, dict[int, list[Card]]] | None = None
        self._before: dict[int, dict[str, Any]] | None = None
        self._index: tuple[int, dict[str, list[Any]]] | None = None
        with _gc_paused():
            self._generate(random.Random(seed), cards, token)
        self._mutations = 0

    def _generate(self, rng: random.Random, cards: int, token: str | None) -> None:
        self.token = token or str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self._descriptions = _build_descriptions(rng)
        self._build_users(rng, cards)
        self._build_catalog(rng, cards)
        self._build_structure(rng, cards)
        self.cards: dict[int, Card] = {}
        self.deleted_card_ids: list[int] = []
        self._build_cards(rng, cards)
        self.next_card_id = max(self.cards, default=100_000) + 1
        self.max_updated = max((c.updated for c in self.cards.values()), default=EPOCH_END_MS)

    # ----------------------------------------------------------------- ids and text
    def uid(self, kind: str, ident: int | str) -> str:
        # A version-4-shaped UUID derived from the seed, formatted by hand for speed.
        h = hashlib.md5(f"{self.seed}:{kind}:{ident}".encode(), usedforsecurity=False).hexdigest()
        variant = "89ab"[int(h[16], 16) & 3]
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"

    def _title(self, rnd: Callable[[], float], n: int) -> str:
        words = _WORDS_RU
        parts = [words[int(rnd() * len(words))], words[int(rnd() * len(words))].lower()]
        roll = rnd()
        if roll < 0.15:
            parts.append(_EMOJI[int(rnd() * len(_EMOJI))])
        elif roll < 0.25:
            parts.append(_QUOTES[int(rnd() * len(_QUOTES))])
        elif roll < 0.35:
            parts.append(_WORDS_EN[int(rnd() * len(_WORDS_EN))])
        return f"{' '.join(parts)} #{n}"

    # ----------------------------------------------------------------- generation
    def _build_users(self, rng: random.Random, n_cards: int) -> None:
        n_users = min(400, 20 + n_cards // 100)
        self.users: dict[int, dict[str, Any]] = {}
        for i in range(n_users):
            uid_ = 1000 + i
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            created = EPOCH_START_MS + rng.randrange(86_400_000 * 60)
            active = i == 0 or rng.random() > 0.1
            self.users[uid_] = {
                "id": uid_,
                "uid": self.uid("user", uid_),
                "full_name": f"{first} {last}",
                "username": f"user{uid_}",
                "email": f"user{uid_}@example.test",
                "avatar_initials_url": f"https://kaiten.test/avatars/{uid_}.png",
                "avatar_uploaded_url": None,
                "initials": (first[0] + last[0]).upper(),
                "avatar_type": 1,
                "lng": rng.choice(["ru", "en"]),
                "timezone": "Europe/Moscow",
                "theme": rng.choice(["light", "dark"]),
                "activated": active,
                "virtual": i > 0 and rng.random() < 0.05,
                "role": 1 if i == 0 else rng.choice([1, 2, 2, 2, 3]),
                "email_blocked": None,
                "email_frequency": 1,
                "email_settings": {"weekly_report": True, "mentions": rng.random() < 0.5},
                "ui_version": 2,
                "external": False,
                "company_id": COMPANY_ID,
                "default_space_id": None,
                "permissions": {"can_create_spaces": i == 0, "is_admin": i == 0},
                "settings": {"show_card_ids": True, "start_page": "spaces"},
                "created": fmt_ts(created),
                "updated": fmt_ts(created + rng.randrange(86_400_000 * 300)),
            }
        self.current_user_id = 1000
        self.user_ids = list(self.users)
        self.active_user_ids = [u["id"] for u in self.users.values() if u["activated"]]

    def _build_catalog(self, rng: random.Random, n_cards: int) -> None:
        self.tags: dict[int, dict[str, Any]] = {}
        for i in range(min(150, 15 + n_cards // 700)):
            tid = 500 + i
            created = EPOCH_START_MS + rng.randrange(86_400_000 * 200)
            name = rng.choice(["срочно", "bug", "клиент", "идея", "tech-debt", "🔥", "q3"])
            self.tags[tid] = {
                "id": tid,
                "uid": self.uid("tag", tid),
                "name": f"{name}-{i}",
                "color": rng.choice(_COLORS),
                "archived": rng.random() < 0.05,
                "company_id": COMPANY_ID,
                "created": fmt_ts(created),
                "updated": fmt_ts(created + rng.randrange(86_400_000 * 30)),
            }
        self.tag_ids = list(self.tags)

        self.card_types: dict[int, dict[str, Any]] = {}
        for i, (name, letter) in enumerate(
            [("Card", "C"), ("Bug", "B"), ("Задача", "З"), ("Epic", "E"), ("Старый тип", "S")]
        ):
            tid = 10 + i
            created = EPOCH_START_MS + i * 1000
            self.card_types[tid] = {
                "id": tid,
                "uid": self.uid("type", tid),
                "name": name,
                "letter": letter,
                "color": _COLORS[i],
                "archived": i == 4,
                "company_id": COMPANY_ID,
                "properties": {"id_101": {"required": i == 1}} if i < 2 else None,
                "suggest_fields": i == 1,
                "description_template": "Шаги:\n1.\n2." if i == 1 else None,
                "created": fmt_ts(created),
                "updated": fmt_ts(created + 86_400_000),
            }
        self.live_type_ids = [t for t, v in self.card_types.items() if not v["archived"]]

        # id, name, type, multi_select, values
        specs: list[tuple[int, str, str, bool, list[str]]] = [
            (101, "Оценка, ч", "number", False, []),
            (102, "Клиент", "string", False, []),
            (103, "Приоритет", "select", False, ["Низкий", "Средний", "Высокий", "🔥"]),
            (104, "Компоненты", "select", True, ["backend", "frontend", "mobile", "infra"]),
            (105, "Дата релиза", "date", False, []),
            (106, "Готово к демо", "checkbox", False, []),
            (107, "Ссылка", "url", False, []),
            (108, "Удалённое поле", "string", False, []),
        ]
        self.custom_properties: dict[int, dict[str, Any]] = {}
        self.select_values: dict[int, list[dict[str, Any]]] = {}
        for pid, name, ptype, multi, values in specs:
            created = EPOCH_START_MS + pid * 60_000
            self.custom_properties[pid] = {
                "id": pid,
                "uid": self.uid("prop", pid),
                "name": name,
                "type": ptype,
                "condition": "inactive" if pid == 108 else "active",
                "multi_select": multi,
                "multiline": ptype == "string",
                "values_type": None,
                "values_creatable_by_users": ptype == "select",
                "show_on_facade": pid in (103, 104),
                "fields_settings": None,
                "author_id": 1000,
                "company_id": COMPANY_ID,
                "external_id": None,
                "data": None,
                "created": fmt_ts(created),
                "updated": fmt_ts(created + 3_600_000),
            }
            self.select_values[pid] = [
                {
                    "id": pid * 100 + j,
                    "uid": self.uid("propval", pid * 100 + j),
                    "value": v,
                    "color": _COLORS[j],
                    "condition": "active",
                    "sort_order": float(j),
                    "custom_property_id": pid,
                    "author_id": 1000,
                    "company_id": COMPANY_ID,
                    "created": fmt_ts(created),
                    "updated": fmt_ts(created),
                }
                for j, v in enumerate(values, start=1)
            ]

    def _build_structure(self, rng: random.Random, n_cards: int) -> None:
        n_spaces = min(60, 3 + n_cards // 2000)
        self.spaces: dict[int, dict[str, Any]] = {}
        self.space_order: list[int] = []
        for i in range(n_spaces):
            sid = 200 + i
            nested = i == 2 or (i > 2 and rng.random() < 0.4)  # small workspaces nest too
            parent = self.spaces[200 + rng.randrange(i)] if nested else None
            created = EPOCH_START_MS + i * 86_400_000
            uid_ = self.uid("space", sid)
            self.spaces[sid] = {
                "id": sid,
                "uid": uid_,
                "title": f"{rng.choice(['Разработка', 'Маркетинг', 'Support', 'Продажи 💰'])} {i}",
                "created": fmt_ts(created),
                "updated": fmt_ts(created + rng.randrange(86_400_000 * 400)),
                "archived": i > 2 and rng.random() < 0.05,
                "access": rng.choice(["for_everyone", "by_invite"]),
                "for_everyone_access_role_id": None,
                "entity_type": "space",
                "path": f"{parent['path']}.{sid}" if parent else str(sid),
                "sort_order": float(i + 1),
                "parent_entity_uid": parent["uid"] if parent else None,
                "company_id": COMPANY_ID,
                "allowed_card_type_ids": None,
                "external_id": None if rng.random() < 0.8 else f"ext-space-{sid}",
                "settings": {"timeline": {"startHour": 9, "endHour": 18}},
                "author_uid": self.users[1000]["uid"],
                "description": None,
            }
            self.space_order.append(sid)

        n_boards = min(400, 2 * n_spaces + n_cards // 1000)
        self.boards: dict[int, dict[str, Any]] = {}
        self.columns: dict[int, dict[str, Any]] = {}  # every column, sub or top, flat
        self.top_columns: dict[int, list[int]] = {}  # board -> top-level column ids
        self.sub_columns: dict[int, list[int]] = {}  # top column -> subcolumn ids
        self.leaf_columns: dict[int, list[int]] = {}  # board -> columns a card can sit in
        self.lanes: dict[int, dict[str, Any]] = {}
        self.board_lanes: dict[int, list[int]] = {}
        self.space_boards: list[tuple[int, int]] = []
        next_col, next_lane = 3000, 8000
        for b in range(n_boards):
            bid = 300 + b
            space_id = self.space_order[b % n_spaces]
            created = EPOCH_START_MS + rng.randrange(86_400_000 * 100)
            self.boards[bid] = {
                "id": bid,
                "uid": self.uid("board", bid),
                "title": f"Доска {b} {rng.choice(_EMOJI) if b % 4 == 0 else ''}".strip(),
                "description": None if b % 3 else "Описание доски\nс переносом",
                "created": fmt_ts(created),
                "updated": fmt_ts(created + rng.randrange(86_400_000 * 200)),
                "external_id": None,
                "default_card_type_id": 10,
                "card_properties": [{"id": 103, "required": False}] if b % 2 else None,
                "cell_wip_limits": None,
                "email_key": f"board{bid}",
                "move_parents_to_done": False,
                "default_tags": None,
                "first_image_is_cover": False,
                "reset_lane_spent_time": False,
                "backward_moves_enabled": True,
                "auto_assign_enabled": False,
                "automove_cards": False,
                "space_id": space_id,
                "sort_order": float(b + 1),
                "top": 10 + 400 * (b // n_spaces),
                "left": 10,
                "type": 1,
                "archived": False,
                "company_id": COMPANY_ID,
            }
            self.space_boards.append((space_id, bid))
            if n_spaces > 1 and (b == 1 or rng.random() < 0.15):
                other = self.space_order[(b + 1 + rng.randrange(n_spaces - 1)) % n_spaces]
                self.space_boards.append((other, bid))
            # columns: queue, in progress (maybe with subcolumns), done
            tops: list[int] = []
            leaves: list[int] = []
            kinds = [1] + [2] * rng.randint(1, 3) + [3]
            for k, ctype in enumerate(kinds):
                cid = next_col
                next_col += 1
                tops.append(cid)
                self.columns[cid] = self._column(rng, cid, bid, None, k, ctype, created)
                subs: list[int] = []
                if ctype == 2 and rng.random() < 0.4:
                    for s in range(rng.randint(2, 3)):
                        sc = next_col
                        next_col += 1
                        subs.append(sc)
                        self.columns[sc] = self._column(rng, sc, bid, cid, s, ctype, created)
                self.sub_columns[cid] = subs
                leaves.extend(subs or [cid])
            self.top_columns[bid] = tops
            self.leaf_columns[bid] = leaves
            lane_ids: list[int] = []
            for k in range(rng.randint(1, 3)):
                lid = next_lane
                next_lane += 1
                lane_ids.append(lid)
                self.lanes[lid] = {
                    "id": lid,
                    "uid": self.uid("lane", lid),
                    "title": "Default" if k == 0 else f"Дорожка {k} «{rng.choice(_WORDS_EN)}»",
                    "sort_order": float(k + 1),
                    "row_count": 1,
                    "wip_limit": None,
                    "wip_limit_type": 1,
                    "board_id": bid,
                    "condition": 1,
                    "default_card_type_id": None,
                    "external_id": None,
                    "created": fmt_ts(created),
                    "updated": fmt_ts(created + k * 1000),
                }
            if rng.random() < 0.2:  # an archived lane that still lists in /lanes
                lid = next_lane
                next_lane += 1
                self.lanes[lid] = dict(
                    self.lanes[lane_ids[0]],
                    id=lid,
                    uid=self.uid("lane", lid),
                    title="Архив",
                    condition=2,
                    sort_order=99.0,
                )
                self.board_lanes[bid] = [*lane_ids, lid]
            else:
                self.board_lanes[bid] = lane_ids
        self.board_ids = list(self.boards)
        self.board_spaces: dict[int, list[int]] = {}
        for sid, bid in self.space_boards:
            self.board_spaces.setdefault(bid, []).append(sid)

    def _column(
        self,
        rng: random.Random,
        cid: int,
        bid: int,
        parent: int | None,
        k: int,
        ctype: int,
        created: int,
    ) -> dict[str, Any]:
        names = {1: "Очередь", 2: "В работе", 3: "Готово ✅"}
        return {
            "id": cid,
            "uid": self.uid("column", cid),
            "title": f"{names[ctype]} {k}" if parent is None else f"Этап {k + 1}",
            "sort_order": float(k + 1),
            "type": ctype,
            "wip_limit": rng.choice([None, None, 5, 10]),
            "wip_limit_type": 1,
            "col_count": 1,
            "board_id": bid,
            "column_id": parent,
            "archive_after_days": 30 if ctype == 3 and rng.random() < 0.5 else -1,
            "rules": 0,
            "pause_sla": False,
            "external_id": None,
            "created": fmt_ts(created),
            "updated": fmt_ts(created + cid),
        }

    def _live_lanes(self, bid: int) -> list[int]:
        return [lid for lid in self.board_lanes[bid] if self.lanes[lid]["condition"] == 1]

    def _build_cards(self, rng: random.Random, n: int) -> None:
        span = EPOCH_END_MS - EPOCH_START_MS
        # Bulk edits: a few hundred instants each shared by many cards.
        bulk = sorted(EPOCH_START_MS + rng.randrange(span) for _ in range(max(1, n // 40)))
        n_bulk = len(bulk)
        live_lanes = {b: self._live_lanes(b) for b in self.board_ids}
        users, types, tags = self.active_user_ids, self.live_type_ids, self.tag_ids
        boards, leaves = self.board_ids, self.leaf_columns
        n_users, n_types, n_tags, n_boards = len(users), len(types), len(tags), len(boards)
        # int(rnd() * n) instead of randrange/choice: 5x cheaper, and start-up time at
        # 100,000+ cards is dominated by these calls.
        rnd = rng.random
        col_type = {cid: c["type"] for cid, c in self.columns.items()}
        day = 86_400_000
        for i in range(n):
            c = Card()
            cid = 100_000 + i * 3 + (i % 3 == 0)  # gaps: real ids are not dense
            c.id = cid
            c.title = self._title(rnd, cid)
            c.descr = -1 if rnd() < 0.3 else int(rnd() * _DESCRIPTION_POOL_SIZE)
            created = EPOCH_START_MS + int(rnd() * (span - day))
            c.created = created
            if rnd() < 0.3:
                k = bisect_left(bulk, created)
                updated = bulk[k + int(rnd() * (n_bulk - k))] if k < n_bulk else created
            else:
                updated = created + int(rnd() * min(EPOCH_END_MS - created, day * 120))
            c.updated = updated
            bid = boards[int(rnd() * n_boards)]
            c.board_id = bid
            board_leaves = leaves[bid]
            column = board_leaves[int(rnd() * len(board_leaves))]
            c.column_id = column
            lanes = live_lanes[bid]
            lane = lanes[int(rnd() * len(lanes))]
            c.lane_id = lane
            c.owner_id = users[int(rnd() * n_users)]
            c.updater_id = users[int(rnd() * n_users)]
            c.type_id = types[int(rnd() * n_types)]
            c.state = col_type[column]
            c.archived_flag = rnd() < 0.12
            c.version = 1 + int(rnd() * 30)
            c.sort_order = round(rnd() * 1000, 6)
            c.fifo_order = i
            c.asap = rnd() < 0.05
            c.due_date = created + int(rnd() * day * 60) if rnd() < 0.3 else None
            if rnd() < 0.4:
                c.size = float(1 + int(rnd() * 12)) if rnd() < 0.5 else round(rnd() * 8, 2)
            else:
                c.size = None
            c.external_id = f"JIRA-{cid}" if rnd() < 0.05 else None
            c.blocked = rnd() < 0.04
            nm = int(rnd() * 4)
            members = dict.fromkeys(users[int(rnd() * n_users)] for _ in range(nm))
            c.members = tuple((u, 2 if j == 0 else 1) for j, u in enumerate(members))
            nt = int(rnd() * 4) if rnd() < 0.6 and n_tags else 0
            c.tag_ids = tuple(sorted({tags[int(rnd() * n_tags)] for _ in range(nt)}))
            c.props = self._random_props(rnd) if rnd() < 0.7 else None
            moved = created + (updated - created) // 2
            c.last_moved_at = moved
            c.column_changed_at = moved
            c.lane_changed_at = created
            c.first_in_progress = moved if c.state >= 2 else None
            c.last_done = moved if c.state == 3 else None
            c.completed_at = moved if c.state == 3 else None
            if rnd() < 0.2:
                c.planned_start = created
                c.planned_end = created + (1 + int(rnd() * 29)) * day
            else:
                c.planned_start = c.planned_end = None
            c.comments_total = int(rnd() * 4) if rnd() < 0.5 else 0
            c.comment_last = moved if c.comments_total else None
            c.time_spent = int(rnd() * 600) if rnd() < 0.2 else 0
            c.time_blocked = int(rnd() * 3000) if c.blocked else 0
            c.checklist_n = int(rnd() * 3) if rnd() < 0.25 else 0
            c.file_n = int(rnd() * 3) if rnd() < 0.15 else 0
            author = c.owner_id
            if moved > created:
                first_column = board_leaves[int(rnd() * len(board_leaves))]
                c.history = [
                    (created, bid, first_column, lane, author, 1),
                    (moved, bid, column, lane, c.updater_id, 1),
                ]
            else:
                c.history = [(created, bid, column, lane, author, 1)]
            if c.archived_flag:
                c.history.append((updated, bid, column, lane, c.updater_id, 2))
            c.parents_ids = []
            c.children_ids = []
            self.cards[cid] = c
        # A few parent/child links so the arrays are not always empty.
        ids = list(self.cards)
        for _ in range(len(ids) // 50):
            parent, child = rng.sample(ids, 2)
            if child not in self.cards[parent].children_ids:
                self.cards[parent].children_ids.append(child)
                self.cards[child].parents_ids.append(parent)

    def _random_props(self, rnd: Callable[[], float]) -> dict[str, Any]:
        props: dict[str, Any] = {}
        if rnd() < 0.6:
            props["id_101"] = (1, 2, 3, 5, 8, 13, 0.5, 2.75)[int(rnd() * 8)]
        if rnd() < 0.4:
            props["id_102"] = ("ООО «Ромашка»", 'ACME "Corp"', "Клиент\nс переносом")[
                int(rnd() * 3)
            ]
        if rnd() < 0.5:
            values = self.select_values[103]
            props["id_103"] = [values[int(rnd() * len(values))]["id"]]
        if rnd() < 0.4:
            values = self.select_values[104]
            props["id_104"] = sorted({values[int(rnd() * len(values))]["id"] for _ in range(3)})
        if rnd() < 0.2:
            props["id_105"] = {"date": f"2026-03-0{1 + int(rnd() * 9)}", "time": None}
        if rnd() < 0.2:
            props["id_106"] = rnd() < 0.5
        if rnd() < 0.1:
            props["id_107"] = "https://example.test/?q=1&r=ё"
        return props

    # ----------------------------------------------------------------- rendering
    def user_short(self, user_id: int) -> dict[str, Any]:
        u = self.users[user_id]
        return {
            "id": u["id"],
            "uid": u["uid"],
            "full_name": u["full_name"],
            "username": u["username"],
            "email": u["email"],
            "avatar_initials_url": u["avatar_initials_url"],
            "avatar_uploaded_url": None,
            "initials": u["initials"],
            "avatar_type": 1,
            "activated": u["activated"],
            "virtual": u["virtual"],
        }

    def column_short(self, column_id: int) -> dict[str, Any]:
        col = self.columns[column_id]
        out = {
            "id": col["id"],
            "uid": col["uid"],
            "title": col["title"],
            "sort_order": col["sort_order"],
            "type": col["type"],
            "board_id": col["board_id"],
            "column_id": col["column_id"],
            "wip_limit": col["wip_limit"],
            "col_count": col["col_count"],
        }
        if col["column_id"] is not None:
            out["parent"] = self.column_short(col["column_id"])
        return out

    def _shared(self, kind: str, ident: int, build: Callable[[int], dict[str, Any]]) -> dict:
        key = (kind, ident)
        value = self._shared_cache.get(key)
        if value is None:
            value = self._shared_cache[key] = build(ident)
        return value

    def _fresh(self, kind: str, ident: int, build: Callable[[int], dict[str, Any]]) -> dict:
        return _json_copy(self._shared(kind, ident, build))

    def _type_short(self, type_id: int) -> dict[str, Any]:
        t = self.card_types[type_id]
        keys = ("id", "uid", "name", "letter", "color", "archived", "company_id")
        return {k: t[k] for k in keys}

    def _board_for_card(self, board_id: int) -> dict[str, Any]:
        b = self.boards[board_id]
        return {
            k: b[k] for k in ("id", "uid", "title", "external_id", "card_properties", "space_id")
        }

    def _lane_short(self, lane_id: int) -> dict[str, Any]:
        lane = self.lanes[lane_id]
        return {k: lane[k] for k in ("id", "uid", "title", "sort_order", "condition", "board_id")}

    def _path_data(self, board_id: int) -> dict[str, Any]:
        board = self.boards[board_id]
        space = self.spaces[board["space_id"]]
        return {
            "space": {"id": space["id"], "uid": space["uid"], "title": space["title"]},
            "board": {"id": board["id"], "uid": board["uid"], "title": board["title"]},
        }

    def render_card(
        self, c: Card, *, detail: bool = True, description: bool = True, fresh: bool = False
    ) -> dict:
        """The card as the API shows it. Nested objects of other entities are shared
        between renders (cheap, fine for serialising); `fresh` gives a card that owns every
        nested object, safe to hand to callers that may modify it."""
        tags = self.tags
        shared = self._fresh if fresh else self._shared
        key = f"{self.card_types[c.type_id]['letter']}-{c.id}"
        card: dict[str, Any] = {
            "id": c.id,
            "uid": self.uid("card", c.id),
            "title": c.title,
            "description": None if c.descr < 0 else self._descriptions[c.descr],
            "asap": c.asap,
            "created": fmt_ts(c.created),
            "updated": fmt_ts(c.updated),
            "archived": c.archived_flag,
            "condition": c.condition,
            "state": c.state,
            "sort_order": c.sort_order,
            "fifo_order": c.fifo_order,
            "due_date": fmt_ts(c.due_date),
            "due_date_time_present": c.due_date is not None and c.due_date % 2 == 0,
            "board_id": c.board_id,
            "column_id": c.column_id,
            "lane_id": c.lane_id,
            "owner_id": c.owner_id,
            "type_id": c.type_id,
            "updater_id": c.updater_id,
            "version": c.version,
            "size": c.size,
            "size_unit": "ч" if c.size is not None else None,
            "size_text": None if c.size is None else f"{c.size:g} ч",
            "sprint_id": None,
            "external_id": c.external_id,
            "source": "app" if c.id % 7 else "api",
            "key": key,
            "public": False,
            "share_id": None,
            "share_settings": None,
            "blocked": c.blocked,
            "blocking_card": False,
            "blockers": (
                [{"id": c.id * 10, "reason": "Ждём ответа «клиента»", "released": False}]
                if c.blocked
                else []
            ),
            "last_moved_at": fmt_ts(c.last_moved_at),
            "lane_changed_at": fmt_ts(c.lane_changed_at),
            "column_changed_at": fmt_ts(c.column_changed_at),
            "first_moved_to_in_progress_at": fmt_ts(c.first_in_progress),
            "last_moved_to_done_at": fmt_ts(c.last_done),
            "completed_at": fmt_ts(c.completed_at),
            "completed_on_time": None if c.completed_at is None else c.id % 3 != 0,
            "planned_start": fmt_date(c.planned_start),
            "planned_end": fmt_date(c.planned_end),
            "comments_total": c.comments_total,
            "comment_last_added_at": fmt_ts(c.comment_last),
            "time_spent_sum": c.time_spent,
            "time_blocked_sum": c.time_blocked,
            "estimate_workload": 0,
            "parents_ids": list(c.parents_ids),
            "children_ids": list(c.children_ids),
            "parents_count": len(c.parents_ids),
            "children_count": len(c.children_ids),
            "children_done": sum(
                1 for ch in c.children_ids if ch in self.cards and self.cards[ch].state == 3
            ),
            "goals_total": 0,
            "goals_done": 0,
            "tag_ids": list(c.tag_ids),
            "properties": _json_copy(c.props) if c.props else None,
            "email": f"board{c.board_id}+{c.id}@mail.kaiten.test",
            "service_id": None,
            "external_user_emails": None,
            "has_blocked_children": False,
            "description_filled": c.descr >= 0,
            "counters_recalculated_at": fmt_ts(c.updated),
            "cardRole": 1,
            "expires_later": False,
            "sd_new_comment": False,
            "import_id": None,
            "sd_external_recipients_cc": None,
            "sprint_name": None,
            "calculated_planned_start": fmt_date(c.planned_start),
            "calculated_planned_end": fmt_date(c.planned_end),
            "blocked_at": fmt_ts(c.updated) if c.blocked else None,
            "blocker_id": c.updater_id if c.blocked else None,
            "responsible_id": next((u for u, t in c.members if t == 2), None),
            "members_count": len(c.members),
            "tags_count": len(c.tag_ids),
            "files_count": c.file_n,
            "checklists_total": c.checklist_n,
            "external_links": [],
            "owner_email": self.users[c.owner_id]["email"],
            # Nested objects of immutable entities are built once and shared between
            # cards: rendering is the server's hot path. Never mutate a rendered card.
            "owner": shared("user", c.owner_id, self.user_short),
            "type": shared("type", c.type_id, self._type_short),
            "board": shared("board", c.board_id, self._board_for_card),
            "column": shared("column", c.column_id, self.column_short),
            "lane": shared("lane", c.lane_id, self._lane_short),
            "members": [
                dict(self._shared("user", u, self.user_short), type=t, card_id=c.id, user_id=u)
                for u, t in c.members
            ],
            "tags": [
                {
                    "id": t,
                    "uid": tags[t]["uid"],
                    "name": tags[t]["name"],
                    "color": tags[t]["color"],
                    "tag_id": t,
                    "card_id": c.id,
                }
                for t in c.tag_ids
            ],
            "files": self._files(c),
            "path_data": shared("path", c.board_id, self._path_data),
        }
        if detail:
            card["checklists"] = self._checklists(c)
        else:
            # The list endpoint leaves out checklists, and description unless asked for
            # with additional_card_fields=description (as Kaiten does).
            if not description:
                del card["description"]
        return card

    def _files(self, c: Card) -> list[dict[str, Any]]:
        return [
            {
                "id": c.id * 10 + k,
                "uid": self.uid("file", c.id * 10 + k),
                "name": ["скриншот.png", "ТЗ v2 (финал).docx", "log.txt"][k],
                "url": f"https://files.kaiten.test/{c.id}/{k}",
                "size": 1024 * (k + 1) + c.id % 1000,
                "type": 1,
                "mime_type": ["image/png", "application/msword", "text/plain"][k],
                "card_id": c.id,
                "author_id": c.owner_id,
                "deleted": False,
                "external": False,
                "sort_order": float(k + 1),
                "created": fmt_ts(c.created + k * 1000),
                "updated": fmt_ts(c.created + k * 1000),
            }
            for k in range(c.file_n)
        ]

    def _checklists(self, c: Card) -> list[dict[str, Any]]:
        out = []
        for k in range(c.checklist_n):
            lid = c.id * 10 + k
            items = []
            for j in range(1 + (c.id + k) % 4):
                iid = lid * 10 + j
                checked = (c.id + j) % 2 == 0
                items.append(
                    {
                        "id": iid,
                        "uid": self.uid("checkitem", iid),
                        "text": ["Проверить", "Согласовать «макет»", "Deploy 🚀", "QA"][j],
                        "sort_order": float(j + 1),
                        "checked": checked,
                        "checker_id": c.owner_id if checked else None,
                        "user_id": c.owner_id,
                        "checked_at": fmt_ts(c.created + 60_000) if checked else None,
                        "responsible_id": None,
                        "due_date": None,
                        "checklist_id": lid,
                        "created": fmt_ts(c.created),
                        "updated": fmt_ts(c.created + 60_000),
                    }
                )
            out.append(
                {
                    "id": lid,
                    "uid": self.uid("checklist", lid),
                    "name": "Чек-лист" if k == 0 else f"Checklist {k}",
                    "sort_order": float(k + 1),
                    "policy_id": None,
                    "card_id": c.id,
                    "created": fmt_ts(c.created),
                    "updated": fmt_ts(c.created + 60_000),
                    "items": items,
                }
            )
        return out

    def comments(self, c: Card) -> list[dict[str, Any]]:
        rng = random.Random(c.id * 7919 + self.seed)
        out = []
        last = c.comment_last or c.created
        for k in range(c.comments_total):
            created = c.created + (last - c.created) * (k + 1) // c.comments_total
            edited = rng.random() < 0.2
            author = rng.choice(self.active_user_ids)
            out.append(
                {
                    "id": c.id * 16 + k,
                    "uid": self.uid("comment", c.id * 16 + k),
                    "card_id": c.id,
                    "author_id": author,
                    "text": rng.choice(
                        [
                            "Готово 👍",
                            'Посмотри, пожалуйста "это"\nи это',
                            "<p>html <b>comment</b></p>",
                            "@user1000 уточни срок",
                        ]
                    ),
                    "type": 2 if k % 3 == 2 else 1,
                    "edited": edited,
                    "internal": False,
                    "deleted": False,
                    "sd_description": False,
                    "author": self.user_short(author),
                    "created": fmt_ts(created),
                    "updated": fmt_ts(created + (3_600_000 if edited else 0)),
                }
            )
        return out

    def location_history(self, c: Card) -> list[dict[str, Any]]:
        out = []
        for k, (changed, bid, col, lane, author, cond) in enumerate(c.history):
            parent = self.columns[col]["column_id"]
            out.append(
                {
                    "id": str(c.id * 1000 + k),
                    "card_id": c.id,
                    "board_id": bid,
                    "column_id": parent if parent is not None else col,
                    "subcolumn_id": col if parent is not None else None,
                    "lane_id": lane,
                    "sprint_id": None,
                    "author_id": author,
                    "condition": cond,
                    "changed": fmt_ts(changed),
                    "author": self.user_short(author),
                }
            )
        return out

    def space_json(self, sid: int, *, with_boards: bool) -> dict[str, Any]:
        space = dict(self.spaces[sid])
        if with_boards:
            space["boards"] = [self.board_short(bid) for s, bid in self.space_boards if s == sid]
        return space

    def board_short(self, bid: int) -> dict[str, Any]:
        b = self.boards[bid]
        return {
            "id": b["id"],
            "uid": b["uid"],
            "title": b["title"],
            "external_id": b["external_id"],
            "sort_order": b["sort_order"],
            "top": b["top"],
            "left": b["left"],
            "type": b["type"],
            "space_id": b["space_id"],
        }

    def columns_json(self, bid: int) -> list[dict[str, Any]]:
        out = []
        for cid in self.top_columns[bid]:
            col = dict(self.columns[cid])
            col["subcolumns"] = [dict(self.columns[s]) for s in self.sub_columns[cid]]
            out.append(col)
        return out

    def lanes_json(self, bid: int) -> list[dict[str, Any]]:
        return [dict(self.lanes[lid]) for lid in self.board_lanes[bid]]

    def board_json(self, bid: int, *, with_cards: bool) -> dict[str, Any]:
        board = dict(self.boards[bid])
        board["columns"] = self.columns_json(bid)
        board["lanes"] = self.lanes_json(bid)
        if with_cards:
            on_board = self._cards_by_board().get(bid, [])
            board["cards"] = [
                self.render_card(c, detail=False, description=False) for c in on_board
            ]
        return board

    def _cards_by_board(self) -> dict[int, list[Card]]:
        """Cards grouped per board, rebuilt once per generation: /boards/{id} is called
        for every board in turn, and a scan of every card each time adds up."""
        with self.lock:
            if self._board_cards is None or self._board_cards[0] != self.generation:
                groups: dict[int, list[Card]] = {}
                for card in sorted(self.cards.values(), key=_by_id):
                    groups.setdefault(card.board_id, []).append(card)
                self._board_cards = (self.generation, groups)
            return self._board_cards[1]

    def visible_tags(self) -> list[dict[str, Any]]:
        # Kaiten lists only tags that sit on at least one card.
        with self.lock:
            if self._used_tags is None or self._used_tags[0] != self.generation:
                used = {t for c in self.cards.values() for t in c.tag_ids}
                self._used_tags = (self.generation, sorted(used))
            return [dict(self.tags[t]) for t in self._used_tags[1]]

    def custom_property_json(self, pid: int, *, include_values: bool) -> dict[str, Any]:
        prop = dict(self.custom_properties[pid])
        if include_values and prop["type"] == "select":
            prop["values"] = [dict(v) for v in self.select_values[pid]]
        return prop

    # ----------------------------------------------------------------- truth
    STREAMS = (
        "spaces", "boards", "columns", "lanes", "cards", "users", "tags", "card_types",
        "custom_properties", "card_location_history", "card_comments", "deleted_card_ids",
        "space_boards",
    )  # fmt: skip

    def truth(self, streams: Iterable[str] | None = None, *, fresh: bool = False) -> dict:
        """Every entity as the API returns it; `streams` picks a subset (big workspaces).
        `fresh`: the caller owns every object in the answer (nothing shared with the
        workspace), so it may modify them; otherwise only serialise the answer."""
        wanted = list(self.STREAMS if streams is None else streams)
        unknown = sorted(set(wanted) - set(self.STREAMS))
        if unknown:
            raise BadRequest(
                f"unknown stream(s) {', '.join(unknown)}; known: {', '.join(self.STREAMS)}"
            )
        with self.lock:
            cards = sorted(self.cards.values(), key=lambda c: c.id)
            build: dict[str, Callable[[], Any]] = {
                "spaces": lambda: [self.space_json(s, with_boards=False) for s in self.space_order],
                "boards": lambda: [self.board_json(b, with_cards=False) for b in self.board_ids],
                "columns": lambda: [col for b in self.board_ids for col in self.columns_json(b)],
                "lanes": lambda: [lane for b in self.board_ids for lane in self.lanes_json(b)],
                "cards": lambda: [self.render_card(c, fresh=fresh) for c in cards],
                "users": lambda: [dict(u) for u in self.users.values()],
                "tags": self.visible_tags,
                "card_types": lambda: [dict(t) for t in self.card_types.values()],
                "custom_properties": lambda: [
                    self.custom_property_json(p, include_values=True)
                    for p in self.custom_properties
                ],
                "card_location_history": lambda: [
                    h for c in cards for h in self.location_history(c)
                ],
                "card_comments": lambda: [m for c in cards for m in self.comments(c)],
                "deleted_card_ids": lambda: list(self.deleted_card_ids),
                "space_boards": lambda: [[s, b] for s, b in self.space_boards],
            }
            with _gc_paused():
                answer = {name: build[name]() for name in wanted}
            if fresh:
                # Small entity lists share nested dicts (settings, ...) with the workspace.
                for name in set(answer) - {"cards", "card_comments", "card_location_history"}:
                    answer[name] = _json_copy(answer[name])
            return answer

    # ----------------------------------------------------------------- /cards query
    def query_cards(self, key: tuple[Any, ...], build: Callable[[], list[Card]]) -> list[Card]:
        """Memoise one filtered+ordered result per query so offset paging is cheap."""
        with self.lock:
            if self._query_cache and next(iter(self._query_cache))[0] != self.generation:
                self._query_cache.clear()  # results of older generations can never hit again
            full_key = (self.generation, *key)
            hit = self._query_cache.get(full_key)
            if hit is not None:
                self._query_cache.move_to_end(full_key)
                return hit
            result = build()
            self._query_cache[full_key] = result
            while len(self._query_cache) > 64:
                self._query_cache.popitem(last=False)
            return result

    def _updated_index(self, population: str) -> tuple[list[int], list[Card]]:
        """Cards of one population sorted by (updated, id), with their `updated` values
        for bisecting; rebuilt once per generation."""
        if self._index is None or self._index[0] != self.generation:
            # Two stable sorts on plain attributes: no key tuples, no GC churn.
            ordered = sorted(self.cards.values(), key=attrgetter("id"))
            ordered.sort(key=attrgetter("updated"))
            self._index = (self.generation, {"all": ordered})
        indexes = self._index[1]
        if population not in indexes:
            keep = {"live": False, "archived": True}
            ordered = [c for c in indexes["all"] if c.archived_flag == keep[population]]
            indexes[population] = ordered
        cards = indexes[population]
        key = population + ":updated"
        if key not in indexes:
            indexes[key] = [c.updated for c in cards]
        return indexes[key], cards

    def index_page(
        self,
        population: str,
        *,
        after: float | None,
        strict: bool,
        before: float | None,
        preds: list[Callable[[Card], bool]],
        descending: bool,
        offset: int,
        limit: int,
    ) -> list[Card]:
        """One page of cards ordered by (updated, id), found by bisecting the index."""
        if population == "none":
            return []
        with self.lock:
            updated, cards = self._updated_index(population)
            lo = 0 if after is None else (bisect_right if strict else bisect_left)(updated, after)
            hi = len(updated) if before is None else bisect_left(updated, before)
            if not preds:
                if descending:
                    end = hi - offset
                    return cards[max(lo, end - limit) : end][::-1] if end > lo else []
                start = lo + offset
                return cards[start : min(hi, start + limit)] if start < hi else []
            positions = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
            page: list[Card] = []
            skip = offset
            for i in positions:
                card = cards[i]
                if all(p(card) for p in preds):
                    if skip:
                        skip -= 1
                    else:
                        page.append(card)
                        if len(page) == limit:
                            break
            return page

    # ----------------------------------------------------------------- mutations
    def _now(self, bump: int = 0) -> int:
        """A fresh `updated` value: real clock, never earlier than any existing one."""
        now = int(time.time() * 1000)
        value = max(now, self.max_updated + bump)
        self.max_updated = value
        return value

    def mutate(
        self,
        counts: dict[str, int],
        seed: int | None = None,
        *,
        before: dict[int, dict[str, Any]] | None = None,
    ) -> dict[str, list[int]]:
        """Apply the counted changes; `before`, if given, receives each changed card as it
        was rendered before its first change (webhooks send old and new)."""
        with self.lock:
            self._before = before
            try:
                return self._mutate(counts, seed)
            finally:
                self._before = None

    def _remember(self, c: Card) -> None:
        if self._before is not None and c.id not in self._before:
            self._before[c.id] = self.render_card(c)

    def _mutate(self, counts: dict[str, int], seed: int | None) -> dict[str, list[int]]:
        self._mutations += 1
        default_seed = self.seed * 1_000_003 + self._mutations
        rng = random.Random(seed if seed is not None else default_seed)
        out: dict[str, list[int]] = {
            "created": [],
            "updated": [],
            "moved": [],
            "archived": [],
            "unarchived": [],
            "deleted": [],
            "touched": [],
        }
        live = sorted(cid for cid, c in self.cards.items() if not c.archived_flag)
        archived = sorted(cid for cid, c in self.cards.items() if c.archived_flag)

        def pick(pool: list[int], n: int) -> list[int]:
            chosen = rng.sample(pool, min(n, len(pool)))
            taken = set(chosen)
            pool[:] = [x for x in pool if x not in taken]
            return chosen

        for _ in range(counts.get("create", 0)):
            out["created"].append(self._create(rng))
        for cid in pick(live, counts.get("update", 0)):
            self._update(rng, self.cards[cid])
            out["updated"].append(cid)
        for cid in pick(live, counts.get("move", 0)):
            self._move(rng, self.cards[cid])
            out["moved"].append(cid)
        for cid in pick(live, counts.get("archive", 0)):
            self._set_archived(self.cards[cid], archived=True)
            out["archived"].append(cid)
        for cid in pick(archived, counts.get("unarchive", 0)):
            self._set_archived(self.cards[cid], archived=False)
            out["unarchived"].append(cid)
        doomed = pick(live + archived, counts.get("delete", 0))
        gone = set(doomed)
        live[:] = [x for x in live if x not in gone]  # touch_same_ms below picks from live
        for cid in doomed:
            relinked = self._delete(cid)
            out["deleted"].append(cid)
            out["updated"].extend(r for r in relinked if r not in out["updated"])
        n_touch = counts.get("touch_same_ms", 0)
        if n_touch:
            stamp = self._now(1)
            for cid in pick(live, n_touch):
                c = self.cards[cid]
                self._remember(c)
                c.title = c.title.split(" ✎", 1)[0] + f" ✎{c.version + 1}"
                c.updated = stamp
                c.version += 1
                out["touched"].append(cid)
        # A card unlinked from a deleted parent may itself be deleted later in this call.
        out["updated"] = [cid for cid in out["updated"] if cid in self.cards]
        self.generation += 1
        return out

    def _bump(self, c: Card) -> None:
        c.updated = self._now(1)
        c.version += 1
        c.updater_id = self.current_user_id

    def _create(self, rng: random.Random) -> int:
        cid = self.next_card_id
        self.next_card_id += 1
        if not self.board_ids:
            raise BadRequest("this workspace has no boards to create cards on")
        c = Card()
        c.id = cid
        bid = rng.choice(self.board_ids)
        col = self.leaf_columns[bid][0]
        lane = self._live_lanes(bid)[0]
        now = self._now(1)
        c.title, c.descr = self._title(rng.random, cid), rng.randrange(_DESCRIPTION_POOL_SIZE)
        c.created = c.updated = now
        c.board_id, c.column_id, c.lane_id = bid, col, lane
        c.owner_id = c.updater_id = self.current_user_id
        c.type_id = rng.choice(self.live_type_ids)
        c.state, c.archived_flag, c.version = self.columns[col]["type"], False, 1
        c.sort_order, c.fifo_order = round(rng.random() * 1000, 6), cid
        c.asap, c.due_date, c.size, c.external_id, c.blocked = False, None, None, None, False
        c.members = ((self.current_user_id, 2),)
        c.tag_ids = (rng.choice(self.tag_ids),) if self.tag_ids else ()
        c.props = self._random_props(rng.random)
        c.last_moved_at = c.column_changed_at = c.lane_changed_at = now
        c.first_in_progress = now if c.state >= 2 else None
        c.last_done = c.completed_at = now if c.state == 3 else None
        c.planned_start = c.planned_end = None
        c.comments_total, c.comment_last = 0, None
        c.time_spent = c.time_blocked = 0
        c.checklist_n, c.file_n = 0, 0
        c.history = [(now, bid, col, lane, self.current_user_id, 1)]
        c.parents_ids, c.children_ids = [], []
        self.cards[cid] = c
        return cid

    def _update(self, rng: random.Random, c: Card) -> None:
        self._remember(c)
        what = rng.randrange(4)
        if what == 0:
            c.title = c.title.split(" ✎", 1)[0] + f" ✎{c.version + 1}"
        elif what == 1:
            c.descr = rng.randrange(_DESCRIPTION_POOL_SIZE)
        elif what == 2:
            c.props = self._random_props(rng.random)
        else:
            c.size = float(rng.randrange(1, 13))
        self._bump(c)

    def _move(self, rng: random.Random, c: Card) -> None:
        self._remember(c)
        if rng.random() < 0.25 and len(self.board_ids) > 1:
            c.board_id = rng.choice([b for b in self.board_ids if b != c.board_id])
            c.lane_id = rng.choice(self._live_lanes(c.board_id))
            c.lane_changed_at = self._now(1)
        options = [x for x in self.leaf_columns[c.board_id] if x != c.column_id]
        c.column_id = rng.choice(options or self.leaf_columns[c.board_id])
        self._bump(c)
        c.column_changed_at = c.last_moved_at = c.updated
        c.state = self.columns[c.column_id]["type"]
        if c.state >= 2 and c.first_in_progress is None:
            c.first_in_progress = c.updated
        if c.state == 3:
            c.last_done = c.completed_at = c.updated
        c.history.append((c.updated, c.board_id, c.column_id, c.lane_id, c.updater_id, 1))

    def _set_archived(self, c: Card, *, archived: bool) -> None:
        self._remember(c)
        c.archived_flag = archived
        self._bump(c)
        cond = 2 if archived else 1
        c.history.append((c.updated, c.board_id, c.column_id, c.lane_id, c.updater_id, cond))

    def _delete(self, cid: int) -> list[int]:
        card = self.cards.pop(cid)
        # Unlinking is a real write on the linked cards, so they get a new version too.
        relinked: list[int] = []
        for other in card.parents_ids:
            if other in self.cards:
                self._remember(self.cards[other])
                self.cards[other].children_ids.remove(cid)
                self._bump(self.cards[other])
                relinked.append(other)
        for other in card.children_ids:
            if other in self.cards:
                self._remember(self.cards[other])
                self.cards[other].parents_ids.remove(cid)
                self._bump(self.cards[other])
                relinked.append(other)
        self.deleted_card_ids.append(cid)
        return relinked


def _json_copy(value: Any) -> Any:
    """Deep copy of JSON-shaped data (dicts, lists, scalars): faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: _json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_copy(v) for v in value]
    return value


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Building millions of small objects: the cyclic GC would rescan them again and again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _by_id(card: Card) -> int:
    return card.id
