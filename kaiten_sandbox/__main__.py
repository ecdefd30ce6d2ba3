from __future__ import annotations

import sys

from kaiten_sandbox.cli import main

sys.exit(main())
