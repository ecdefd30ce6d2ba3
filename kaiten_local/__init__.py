"""Local tooling: embedded PostgreSQL, the demo runner and pytest fixtures."""
