"""A server and a client in two network namespaces joined by a veth pair, so a test can cut the link.

The addresses (10.213.1.1/30 and 10.213.1.2/30) exist only inside the two namespaces this creates and
removes; nothing is routed anywhere else. The test process itself stays in its own namespace and reaches
the server through its Unix socket, so cutting the link isolates only the client namespace.
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass

SERVER_ADDR = "10.213.1.1"
CLIENT_ADDR = "10.213.1.2"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@dataclass
class NetnsPair:
    server: str
    client: str
    server_if: str
    client_if: str

    @classmethod
    def create(cls) -> NetnsPair:
        tag = uuid.uuid4().hex[:6]
        pair = cls(f"fl-srv-{tag}", f"fl-cli-{tag}", f"fls{tag}", f"flc{tag}")
        ip("netns", "add", pair.server)
        ip("netns", "add", pair.client)
        ip("link", "add", pair.server_if, "type", "veth", "peer", "name", pair.client_if)
        ip("link", "set", pair.server_if, "netns", pair.server)
        ip("link", "set", pair.client_if, "netns", pair.client)
        for ns, dev, addr in ((pair.server, pair.server_if, SERVER_ADDR), (pair.client, pair.client_if, CLIENT_ADDR)):
            ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        return pair

    def cut(self) -> None:
        """Take the link down: packets in either direction vanish, and no side is told."""
        ip("-n", self.client, "link", "set", self.client_if, "down")
        ip("-n", self.server, "link", "set", self.server_if, "down")

    def remove(self) -> None:
        for ns in (self.server, self.client):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.client]
