"""Chat messages, questions and votes, and the moderation that keeps a busy room safe.

Nothing here imports aiohttp or web: callers pass in a Redis client, the EventLog and settings
values, and get core.errors exceptions back. All state lives in Redis, so every moderation
action holds on every process at once.
"""
