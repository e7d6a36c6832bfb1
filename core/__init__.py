"""Domain code shared by openings, chat and stream: errors, ids, the event log, broadcasts.

Nothing here imports aiohttp or web: callers pass in a Redis client and settings.
"""
