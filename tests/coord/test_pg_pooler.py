"""PgBouncer in transaction mode moves a client's statements between server sessions, which strands
session advisory locks, and it drops the startup options that carry the lease: the coordinator must
refuse such a connection with a clear error instead of handing out locks that do not hold."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import ferrolock
import pytest
from pg import PgCluster, bindir, free_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["transaction", "session"])
def pgbouncer(request: pytest.FixtureRequest, pg_template: PgCluster) -> Iterator[str]:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    # PgBouncer refuses to run as root; its files must be readable by the user it runs as.
    root = Path(tempfile.mkdtemp(prefix="ferrolock-pgbouncer-"))
    port = free_port()
    (root / "users.txt").write_text('"postgres" ""\n')
    (root / "pgbouncer.ini").write_text(
        f"[databases]\npostgres = host=127.0.0.1 port={pg_template.port} dbname=postgres user=postgres\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n"
        f"auth_file = {root / 'users.txt'}\npool_mode = {request.param}\nunix_socket_dir =\n"
        # Without this PgBouncer refuses the connection outright; with it, it silently drops the options.
        "ignore_startup_parameters = options\n"
        f"logfile = {root / 'log'}\npidfile = {root / 'pid'}\n"
    )
    for path in [root, *root.iterdir()]:
        shutil.chown(path, "postgres")
    proc = subprocess.Popen(["runuser", "-u", "postgres", "--", binary, str(root / "pgbouncer.ini")])
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(
            [str(bindir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True, check=False
        ).returncode:
            assert proc.poll() is None, (root / "log").read_text()
            assert time.monotonic() < deadline, "pgbouncer did not start"
            time.sleep(0.05)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres?lease=2s"
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


def test_a_pooler_that_drops_session_settings_is_refused(pgbouncer: str) -> None:
    with pytest.raises(ferrolock.CoordinatorError, match="pooler"):
        ferrolock.connect(pgbouncer)
