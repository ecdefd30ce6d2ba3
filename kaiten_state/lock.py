"""The pipeline's run lock, for processes that start runs (the sync service)."""

from __future__ import annotations

from kaiten_state.backend import LOCK_KEY_SQL, SyncLockedError, sync_lock_held

__all__ = ["LOCK_KEY_SQL", "SyncLockedError", "sync_lock_held"]
