"""The process around the app: CLI, settings, data directory, embedded Redis, logs, metrics."""
