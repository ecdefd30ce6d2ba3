"""The sync service: Kaiten webhooks, protected sync endpoints and the /admin/sync page.

`kaiten-service` (cli.py) serves `create_app()` (app.py) with uvicorn; runs of
`meltano run kaiten-sync` / `kaiten-full-sync` are owned by runner.py.
"""

from __future__ import annotations

from kaiten_service.app import create_app
from kaiten_service.settings import Settings

__all__ = ["Settings", "create_app"]
