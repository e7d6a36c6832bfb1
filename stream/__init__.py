"""WebRTC media: WHIP ingest, WHEP playback, the pass-through relay, recording.

Nothing here imports aiohttp or web; `stream.service.MediaService` is what web/api/media.py
calls.
"""
