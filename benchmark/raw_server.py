"""The floor: a bare python-websockets broadcast server, no framework, no persistence.

Every text frame received on any connection is sent as is to every open connection
(`websockets.broadcast`, which skips a connection whose buffer is full instead of
waiting for it). Run by benchmark/run.py: `python raw_server.py PORT`.
"""

import asyncio
import sys

from websockets.asyncio.server import broadcast, serve

CONNECTIONS = set()


async def handler(websocket):
    CONNECTIONS.add(websocket)
    try:
        async for message in websocket:
            broadcast(CONNECTIONS, message)
    finally:
        CONNECTIONS.discard(websocket)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, max_size=65536, compression=None) as server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop  # the event loop uvicorn serves Parley with
    except ImportError:
        asyncio.run(main(int(sys.argv[1])))
    else:
        uvloop.run(main(int(sys.argv[1])))
