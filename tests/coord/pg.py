"""Throwaway PostgreSQL clusters for the coordinator's tests and benchmark.

``PgCluster.create()`` runs ``initdb`` (as the ``postgres`` user: ``initdb`` refuses root) into a fresh
temporary directory and ``start()`` runs the server on a free loopback port, with ``fsync=on`` so the
fencing and durability tests mean what they say. ``stop()`` / ``restart(mode="immediate")`` drive
``pg_ctl``; ``remove()`` stops the server and deletes everything. A second cluster copies the first
one's data directory instead of running ``initdb`` again.

``FERROLOCK_TEST_PG_URL`` points the tests that need only *a* server at an existing one instead; the
tests that restart or cut off the server always start their own. Nothing here skips: without the
binaries (``apt-get install postgresql``) the fixture fails with the reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START_DEADLINE = 60.0


def bindir() -> Path:
    """The newest installed PostgreSQL's binaries."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parent.parent.name))
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): `apt-get install postgresql`, "
            "or set FERROLOCK_TEST_PG_URL to an existing server"
        )
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_postgres(
    *cmd: str | os.PathLike[str], check: bool = True, timeout: float = START_DEADLINE, netns: str | None = None
) -> subprocess.CompletedProcess[str]:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run(
        [*prefix, "runuser", "-u", "postgres", "--", *map(str, cmd)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


@dataclass
class PgCluster:
    root: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    listen: str = "127.0.0.1"
    netns: str | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @classmethod
    def create(cls, template: PgCluster | None = None, **kwargs: object) -> PgCluster:
        root = Path(tempfile.mkdtemp(prefix="ferrolock-pg-"))
        shutil.chown(root, "postgres", "postgres")
        cluster = cls(root, **kwargs)  # type: ignore[arg-type]
        if template is not None:
            as_postgres("cp", "-a", template.data, cluster.data)
            with contextlib.suppress(FileNotFoundError):
                (cluster.data / "postmaster.pid").unlink()
        else:
            as_postgres(
                bindir() / "initdb",
                "-D",
                cluster.data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-instructions",
            )
            (cluster.data / "pg_hba.conf").write_text(
                "local all all trust\nhost all all 0.0.0.0/0 trust\nhost all all ::1/128 trust\n"
            )
        return cluster

    def start(self) -> PgCluster:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses='{self.listen}' -c fsync=on "
            "-c max_connections=300 -c shared_buffers=32MB -c log_min_messages=warning"
        )
        out = as_postgres(
            bindir() / "pg_ctl",
            "-D",
            self.data,
            "-o",
            options,
            "-l",
            self.root / "log",
            "-w",
            "-t",
            str(int(START_DEADLINE)),
            "start",
            check=False,
            netns=self.netns,
        )
        if out.returncode != 0:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {out.stdout}{out.stderr}\n{log[-2000:]}")
        return self

    def stop(self, mode: str = "fast") -> None:
        as_postgres(bindir() / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False, netns=self.netns)

    def restart(self, mode: str = "immediate") -> None:
        self.stop(mode)
        self.start()

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://postgres@{self.host}:{self.port}/postgres" + (f"?{query}" if query else "")

    def psql(self, sql: str) -> str:
        """Run ``sql`` through psql over the Unix socket (independent of the code under test)."""
        out = subprocess.run(
            [
                str(bindir() / "psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-h",
                str(self.root),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=START_DEADLINE,
            check=True,
        )
        return out.stdout.strip()

    def wait_until(self, sql: str, expected: str, deadline: float = START_DEADLINE) -> float:
        """Poll ``sql`` (a test observing the server, not the code under test) until it returns
        ``expected``; returns the time it took."""
        start = time.monotonic()
        while True:
            got = self.psql(sql)
            if got == expected:
                return time.monotonic() - start
            if time.monotonic() - start > deadline:
                raise AssertionError(f"{sql!r} returned {got!r}, never {expected!r}")
            time.sleep(0.01)


def external_url() -> str | None:
    return os.environ.get("FERROLOCK_TEST_PG_URL") or None
