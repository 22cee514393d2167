"""TLS through rustls: a server with a certificate from a private CA is reached with
``sslmode=verify-full&sslrootcert=...``; a client that does not trust the CA, or names another host, is
refused rather than connected blindly."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import ferrolock
import pytest
from pg import PgCluster

pytestmark = pytest.mark.timeout(120)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca_and_server_cert(d: Path, name: str) -> None:
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name} CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=d,
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=d,
    )
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
        cwd=d,
    )


@pytest.fixture
def tls_cluster(pg_template: PgCluster) -> Iterator[tuple[PgCluster, Path, Path]]:
    certs = Path(tempfile.mkdtemp(prefix="ferrolock-tls-"))
    other = certs / "other"
    other.mkdir()
    make_ca_and_server_cert(certs, "ferrolock test")
    make_ca_and_server_cert(other, "somebody else")
    cluster = PgCluster.create(template=pg_template)
    for f in ("server.pem", "server.key"):
        shutil.copy(certs / f, cluster.data / f)
        shutil.chown(cluster.data / f, "postgres", "postgres")
    (cluster.data / "server.key").chmod(0o600)
    with open(cluster.data / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write("ssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\n")
    try:
        cluster.start()
        yield cluster, certs / "ca.pem", other / "ca.pem"
    finally:
        cluster.remove()
        shutil.rmtree(certs, ignore_errors=True)


def test_verify_full_with_the_servers_ca(tls_cluster: tuple[PgCluster, Path, Path]) -> None:
    cluster, ca, other_ca = tls_cluster
    base = f"postgresql://postgres@localhost:{cluster.port}/postgres?lease=2s&sslmode=verify-full"
    coord = ferrolock.connect(f"{base}&sslrootcert={ca}")
    with coord.lock("tls/lock") as held:
        assert held.token >= 1
    assert cluster.psql("SELECT count(*) FROM pg_stat_ssl WHERE ssl") != "0"
    with pytest.raises(ferrolock.CoordinatorError):
        ferrolock.connect(f"{base}&sslrootcert={other_ca}")
    wrong_host = base.replace("@localhost:", "@127.0.0.1:")
    with pytest.raises(ferrolock.CoordinatorError):
        ferrolock.connect(f"{wrong_host}&sslrootcert={ca}")
