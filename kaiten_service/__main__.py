from __future__ import annotations

from kaiten_service.cli import main

raise SystemExit(main())
