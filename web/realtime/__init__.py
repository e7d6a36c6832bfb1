"""Realtime delivery: the Redis pub/sub bus, the per-process hub, sockets, presence, snapshots."""
