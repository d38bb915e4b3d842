"""The drag-and-drop and clipboard format of blocks, shared by palette, canvas and clipboard.

Payload: JSON ``{"blocks": [block dicts], "source": "palette" | "pipeline" | "clipboard",
"index": <index in the pipeline when source is "pipeline", else -1>, "address": [the block's
address (core.addresses) when source is "pipeline": its index, or its path inside groups]}``.
"""
from __future__ import annotations

import json

from PySide6.QtCore import QMimeData

MIME_BLOCKS = "application/x-netbuilder-blocks"


def blocks_mime(blocks: list[dict], source: str, index: int = -1, address: tuple = ()) -> QMimeData:
    mime = QMimeData()
    address = list(address) if address else ([index] if index >= 0 else [])
    payload = json.dumps({"blocks": blocks, "source": source, "index": index, "address": address})
    mime.setData(MIME_BLOCKS, payload.encode("utf-8"))
    mime.setText(payload)  # pasting into a text editor shows the JSON, which is also readable
    return mime


def read_blocks_mime(mime: QMimeData) -> dict | None:
    """The payload, or None when the data is not (valid) netbuilder blocks."""
    raw = bytes(mime.data(MIME_BLOCKS)) if mime.hasFormat(MIME_BLOCKS) else mime.text().encode("utf-8")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("blocks"), list):
        return None
    if not all(isinstance(b, dict) and isinstance(b.get("kind"), str) for b in payload["blocks"]):
        return None
    return payload
