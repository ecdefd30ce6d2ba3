"""tap-kaiten: a Singer tap for the Kaiten kanban API."""
