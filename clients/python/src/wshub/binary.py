"""The §12 binary frame codec: ``[version u8=1][kind u8][metadata length u32 BE][metadata JSON][body]``.

No I/O: the client hands every binary WebSocket frame to :func:`decode_frame`.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from .errors import BinaryFrameError

VERSION = 1
HEADER = struct.Struct(">BBI")
KIND_NAMES = {0: "raw", 1: "image", 2: "audio", 3: "file"}
KINDS = {name: kind for kind, name in KIND_NAMES.items()}


@dataclass(frozen=True)
class BinaryFrame:
    """One decoded binary frame."""

    version: int
    kind: int
    metadata: dict[str, Any]
    body: bytes

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]


def decode_frame(data: bytes) -> BinaryFrame:
    """Decodes one binary frame; raises :class:`BinaryFrameError` when it is malformed."""
    if len(data) < HEADER.size:
        raise BinaryFrameError(f"frame of {len(data)} bytes is shorter than its {HEADER.size}-byte header")
    version, kind, length = HEADER.unpack_from(data)
    if version != VERSION:
        raise BinaryFrameError(f"unsupported version {version}")
    if kind not in KIND_NAMES:
        raise BinaryFrameError(f"unknown kind {kind}")
    end = HEADER.size + length
    if end > len(data):
        raise BinaryFrameError(f"metadata length {length} runs past the end of the frame")
    try:
        metadata = json.loads(data[HEADER.size:end].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise BinaryFrameError(f"metadata is not valid JSON: {error}") from None
    if not isinstance(metadata, dict):
        raise BinaryFrameError("metadata is not a JSON object")
    return BinaryFrame(version=version, kind=kind, metadata=metadata, body=bytes(data[end:]))


def encode_frame(kind: int | str, metadata: dict[str, Any], body: bytes = b"") -> bytes:
    """Encodes a binary frame (metadata as compact UTF-8 JSON, keys in the given order)."""
    if isinstance(kind, str):
        if kind not in KINDS:
            raise BinaryFrameError(f"unknown kind {kind!r}")
        kind = KINDS[kind]
    if kind not in KIND_NAMES:
        raise BinaryFrameError(f"unknown kind {kind}")
    meta = json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return HEADER.pack(VERSION, kind, len(meta)) + meta + bytes(body)
