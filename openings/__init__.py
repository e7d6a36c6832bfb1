"""Job cards (openings), the lineup and the pinned card, applications, CSV import and export.

Nothing here imports aiohttp or web: callers pass in a Redis client, the EventLog and settings
values, and get core.errors exceptions back.
"""
