"""The aiohttp application (`jobcast.web.app.create_app`), in rooms by job:

- `access/`: identities and sessions, organizations, Origin/cookie/header middlewares,
  request checks;
- `api/`: the JSON API, one module per feature, and the OpenAPI document;
- `realtime/`: the Redis pub/sub bus, the per-process hub, the sockets, presence, snapshots;
- `pages/`: server-rendered pages, templates, static files, translations;
- `runtime/`: the CLI, settings, the data directory, the embedded redis-server, logs, metrics.
"""
