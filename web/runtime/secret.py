"""The key that signs cookies, when no `secret_key` is set: DATA_DIR/secret.key, made once
(owner-only) and read by every worker and every later start, so sessions and viewer ids
survive a restart."""

from __future__ import annotations

import os
from pathlib import Path


def ensure_secret(data_dir: Path) -> str:
    """Read or create the cookie-signing key shared by every worker."""
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32).hex()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key
