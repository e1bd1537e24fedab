"""The bad-input matrix's building blocks: a Case (a command line, a part of the one stderr
line it must print, and whether its check needs torch) and crafted-file helpers. The cases
themselves live in tests/bad_inputs.py (compare, maxbatch, suites, reports) and one
tests/bad_inputs_<surface>.py per newer surface; tests/bad_inputs.py gathers them all."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    message: str  # a part of the one stderr line
    needs_torch: bool = False  # the check needs the device, a rebuilt report or a checkpoint
    surface: str = ""  # the benchmark's grouping; the command name when empty

    @property
    def command(self) -> str:
        return " ".join(a if a else "''" for a in self.args)

    @property
    def group(self) -> str:
        return self.surface or self.args[0]


def _c(command: str, message: str, needs_torch: bool = False, surface: str = "") -> Case:
    return Case(tuple(command.split()), message, needs_torch, surface)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares its size and holds no pixels: enough for the size check, which
    must come before any decoding."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
