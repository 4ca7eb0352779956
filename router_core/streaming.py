"""Server-sent events: reading an upstream's stream (writing one is each Dialect's ``frame``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

DONE = b"[DONE]"
# A single SSE line longer than this is an upstream answering garbage, not a model.
MAX_LINE_BYTES = 4 * 1024 * 1024


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Yield each event's ``data`` payload as it arrives (multi-line data joined by newlines).

    ``event:``, ``id:`` and comment lines are skipped: every dialect we read repeats
    the event name inside the JSON payload.
    """
    data: list[bytes] = []
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        if len(buffer) > MAX_LINE_BYTES and b"\n" not in buffer:
            raise ValueError("an upstream stream line exceeds the size limit")
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
    if buffer.startswith(b"data:"):
        data.append(buffer[6:] if buffer[5:6] == b" " else buffer[5:])
    if data:
        yield b"\n".join(data)
