"""Small helpers shared by several test files."""
from __future__ import annotations

import io
import zipfile


def zip_of(members: dict[str, str | bytes]) -> bytes:
    """A zip archive, in memory, of ``{member name: text or bytes}``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()
