"""`mrc serve`: a real server, a real WebSocket client, a real headless Chromium."""

from tests.support.pilot import empty_ws, release_ws  # noqa: F401  (fixtures)
