#!/usr/bin/env python3
"""Scripted SSE upstream for the benchmark (HTTP/1.1, keep-alive, chunked).

GET /sse?n=N&d=D&p=P answers headers at once, the first event after D ms, then an event every
P ms, N events in all. Each event carries the CLOCK_MONOTONIC time (ns) at which it was written,
so the client measures each event's delay through Envoy without comparing schedules.

Usage: sse_upstream.py PORT   (binds 127.0.0.1 only; PORT 0 picks a free port, printed on stdout)
"""

from __future__ import annotations

import asyncio
import sys
import time
from urllib.parse import parse_qs, urlsplit

HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
        b"transfer-encoding: chunked\r\n\r\n")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            request = await reader.readuntil(b"\r\n\r\n")
            target = request.split(b" ", 2)[1].decode()
            query = parse_qs(urlsplit(target).query)
            n = int(query.get("n", ["20"])[0])
            delay = int(query.get("d", ["20"])[0]) / 1000
            period = int(query.get("p", ["10"])[0]) / 1000
            writer.write(HEAD)
            await writer.drain()
            start = time.monotonic()
            for k in range(n):
                due = start + delay + k * period
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                event = b'data: {"k":%d,"t":%d}\n\n' % (k, time.monotonic_ns())
                writer.write(chunk(event))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
