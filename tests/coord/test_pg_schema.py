"""The coordinator's schema: created on first use when the role may, a clear error naming the
administrator's command when it may not, and a refusal to use a schema newer than this build."""

from __future__ import annotations

import subprocess
import sys
import uuid

import ferrolock
import pytest
from pg import PgCluster

pytestmark = pytest.mark.timeout(120)


def test_a_role_that_may_not_create_the_schema_gets_the_administrators_command(pg_template: PgCluster) -> None:
    role, schema = f"agent_{uuid.uuid4().hex[:8]}", f"coord_{uuid.uuid4().hex[:8]}"
    pg_template.psql(f"CREATE ROLE {role} LOGIN")
    url = f"postgresql://{role}@127.0.0.1:{pg_template.port}/postgres?lease=2s&schema={schema}"
    with pytest.raises(ferrolock.CoordinatorError, match="ferrolock schema --url") as info:
        ferrolock.connect(url)
    assert "permission denied" in str(info.value)
    admin = url.replace(f"{role}@", "postgres@")
    out = subprocess.run(
        [sys.executable, "-m", "ferrolock.cli", "schema", "--url", admin],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    pg_template.psql(
        f"GRANT USAGE ON SCHEMA {schema} TO {role}; "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}; "
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}"
    )
    lock = ferrolock.connect(url).lock("after/the/admin")
    with lock:
        assert lock.token == 1


def test_a_schema_newer_than_this_build_is_refused(pg_template: PgCluster) -> None:
    schema = f"coord_{uuid.uuid4().hex[:8]}"
    url = pg_template.url(lease="2s", schema=schema)
    ferrolock.connect(url)  # creates it
    pg_template.psql(f"UPDATE {schema}.meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(ferrolock.CoordinatorError, match="version 99, newer than this ferrolock understands"):
        ferrolock.connect(url)


def test_a_version_1_schema_is_migrated_forward_on_first_use(pg_template: PgCluster) -> None:
    schema = f"coord_{uuid.uuid4().hex[:8]}"
    url = pg_template.url(lease="2s", schema=schema)
    with ferrolock.connect(url).lock("kept/across/the/migration") as lock:
        token = lock.token
    # What version 1 had: no state table, no state function.
    pg_template.psql(
        f"DROP FUNCTION {schema}.state_put; DROP TABLE {schema}.state; "
        f"UPDATE {schema}.meta SET value = '1' WHERE key = 'schema_version'"
    )
    coord = ferrolock.connect(url)
    assert pg_template.psql(f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'").strip() != "1"
    coord.state("after/the/migration").write(b"ok")
    assert coord.state("after/the/migration").read() == b"ok"
    with coord.lock("kept/across/the/migration") as again:
        assert again.token == token + 1, "the fencing counters survive the migration"


def test_a_schema_of_this_version_made_by_other_ddl_is_brought_up_to_date(pg_template: PgCluster) -> None:
    schema = f"coord_{uuid.uuid4().hex[:8]}"
    url = pg_template.url(lease="2s", schema=schema)
    ferrolock.connect(url)
    # A development build between releases made this version without the state table.
    pg_template.psql(
        f"DROP FUNCTION {schema}.state_put; DROP TABLE {schema}.state; "
        f"UPDATE {schema}.meta SET value = 'another build' WHERE key = 'schema_digest'"
    )
    coord = ferrolock.connect(url)
    coord.state("after/the/repair").write(b"ok")
    assert coord.state("after/the/repair").read() == b"ok"
    assert pg_template.psql(f"SELECT value FROM {schema}.meta WHERE key = 'schema_digest'").strip() != "another build"
