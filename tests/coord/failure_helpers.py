"""Workers and a traffic-swallowing proxy for the PostgreSQL failure tests."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

from process_helpers import START_DEADLINE


def paused_holder(url: str, name: str, held: Event, go: Event, report: Connection) -> None:
    """Hold ``name``, draw a token and write with it, then (after being paused and resumed) report what
    ``ensure_held()`` and a fenced write say, and whether ``on_lost`` ran."""
    import ferrolock

    lost = threading.Event()
    lock = ferrolock.connect(url).lock(name, on_lost=lost.set)
    lock.acquire()
    token = lock.token
    lock.fenced_write(b"holder")
    report.send(token)
    held.set()
    go.wait(START_DEADLINE * 4)
    outcome: dict[str, object] = {"on_lost": lost.wait(START_DEADLINE)}
    try:
        lock.ensure_held()
        outcome["ensure_held"] = "ok"
    except ferrolock.LockLost as exc:
        outcome["ensure_held"] = type(exc).__name__
    try:
        lock.fenced_write(b"stale holder")
        outcome["write"] = "ok"
    except ferrolock.LockLost as exc:
        outcome["write"] = type(exc).__name__
    try:  # the same token handed to the store directly, as another process of the holder's would
        ferrolock.connect(url).fenced_write(name, token, b"stale token")
        outcome["token write"] = "ok"
    except ferrolock.LockLost as exc:
        outcome["token write"] = type(exc).__name__
    lock.release()
    report.send(outcome)


class SwallowingProxy:
    """A TCP proxy on loopback that forwards until ``swallow()``; then it keeps both connections open
    and reads and drops everything. TCP itself stays healthy (the proxy's kernel acknowledges every
    segment and keepalive probe), so only a lease can notice."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.swallowing = threading.Event()
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def swallow(self) -> None:
        self.swallowing.set()

    def resume(self) -> None:
        self.swallowing.clear()

    def close(self) -> None:
        self.stopped.set()
        self.server.close()
        for t in self.threads:
            t.join(5)

    def _accept(self) -> None:
        self.server.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:  # the server is restarting: the client sees its connection refused
                client.close()
                continue
            upstream.settimeout(None)
            t = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
            t.start()
            self.threads.append(t)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        with contextlib.ExitStack() as stack:
            stack.enter_context(a)
            stack.enter_context(b)
            while not self.stopped.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.1)
                for s in ready:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    if not self.swallowing.is_set():
                        try:
                            peer[s].sendall(data)
                        except OSError:
                            return
