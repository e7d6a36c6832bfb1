"""WebRTC media: WHIP ingest, WHEP playback, the pass-through relay, recording.

Nothing here imports aiohttp or web; `stream.service.MediaService` is what web/media_api.py
calls.
"""
