"""A raw socket origin for protocol tests: it sends exactly the bytes a test scripts.

aiohttp.web (the scriptable origin in conftest) always frames its answers correctly; tests
of interim responses, lying Content-Length and similar need an origin that does not. Each
path maps to a list of byte strings sent in turn (the last one repeats); `close` closes the
connection after sending, otherwise the connection stays open for the next request. What
the origin received is kept raw, head and body, so a test can compare bytes.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field


@dataclass
class RawAnswer:
    data: bytes
    close: bool = False
    hold: float = 0.0  # seconds to keep the connection open (silent) after sending
    later: bytes = b""  # sent after `hold`, on the same connection (stray bytes)


@dataclass
class RawRequest:
    head: bytes
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.head.split(b" ", 2)[1].decode("latin-1")


@dataclass
class RawOrigin:
    routes: dict[str, list[RawAnswer]] = field(default_factory=dict)
    requests: list[RawRequest] = field(default_factory=list)
    port: int = 0
    connections: int = 0

    def route(self, path: str, *answers: RawAnswer) -> None:
        self.routes[path] = list(answers)

    def seen(self, path: str) -> list[RawRequest]:
        return [r for r in self.requests if r.path.partition("?")[0] == path]

    def start(self) -> RawOrigin:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
            self.port = server.sockets[0].getsockname()[1]
            self._server = server
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        async def shut() -> None:
            self._server.close()
            clients = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in clients:
                task.cancel()
            await asyncio.gather(*clients, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shut(), self._loop)
        self._thread.join(10)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                body = b""
                lowered = head.lower()
                if b"\r\ncontent-length:" in lowered:
                    length = int(lowered.split(b"\r\ncontent-length:", 1)[1].split(b"\r\n", 1)[0])
                    body = await reader.readexactly(length)
                elif b"\r\ntransfer-encoding: chunked" in lowered:
                    while True:
                        size_line = await reader.readuntil(b"\r\n")
                        size = int(size_line.split(b";")[0], 16)
                        chunk = await reader.readexactly(size + 2)
                        if size == 0:
                            break
                        body += chunk[:-2]
                request = RawRequest(head, body)
                self.requests.append(request)
                answers = self.routes.get(request.path.partition("?")[0])
                if not answers:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                writer.write(answer.data)
                await writer.drain()
                if answer.hold:
                    await asyncio.sleep(answer.hold)
                if answer.later:
                    writer.write(answer.later)
                    await writer.drain()
                if answer.close:
                    return
        finally:
            writer.close()
