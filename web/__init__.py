"""The aiohttp application: settings, app factory, CLI, pages, JSON API, WebSockets, the Redis
bus and per-process hub, and the embedded redis-server."""
