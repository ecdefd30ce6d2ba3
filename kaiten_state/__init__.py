"""Meltano state backend add-on: Singer bookmarks in PostgreSQL (`kaiten.sync_metadata`)."""

from __future__ import annotations

from kaiten_state.backend import PostgresStateStoreManager, sync_lock_held

__all__ = ["PostgresStateStoreManager", "sync_lock_held"]
