"""conftest: pytest fixtures shared by the behaviour tests in test/*.py.

Fixtures:
  pg         (session) a PostgreSQL 15 cluster: pg.host, pg.port, pg.socket_dir, pg.dsn(...),
             pg.connect(...), pg.superuser(dbname), pg.sql(query), pg.role_secret(role),
             pg.stop(mode)/start()/restart(mode) with mode 'fast' or 'immediate', pg.log().
             Roles postgres/postgres (superuser), app/app_pw (SCRAM), md5user/md5_pw (md5),
             other/other_pw; databases app and app2, both owned by app.
  pgtally    factory: pgtally(ini={...}, databases={...}, users={...}, userlist={...},
             args=[...], wait=True, kind='pgtally') starts ./pgtally and returns a
             harness.Pooler (port, host, dsn(), admin_dsn, connect(), admin(cmd), log(),
             wait_for_log(re), pid, signal(sig), reload(), stop(), ini_path, write_config()).
             Everything it started is stopped after the test.
  pooler     the same factory (kind='pgbouncer' for Debian's PgBouncer, differential tests).
  pgbouncer  the same factory with kind='pgbouncer' as the default.
When a test fails, the logs of its poolers and the PostgreSQL log lines written meanwhile are
attached to the report.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

harness.raise_nofile_limit()

PG_LOG_TAIL = 200  # lines


@pytest.fixture(scope='session')
def pg():
    cluster = harness.PgCluster()
    try:
        cluster.init()
        yield cluster
    finally:
        cluster.destroy()


def _factory(request, pg, default_kind):
    started = []
    pg_log_start = pg.log_size()
    request.node.__dict__.setdefault('_pgt_logs', []).append(
        lambda: _logs(started, pg, pg_log_start))

    def start(kind=default_kind, wait=True, **kwargs):
        p = harness.Pooler(pg, kind=kind, **kwargs)
        started.append(p)
        p.start(wait=wait)
        return p

    yield start
    for p in started:
        p.stop()
    for p in started:
        p.cleanup()


def _logs(started, pg, pg_log_start):
    sections = []
    for i, p in enumerate(started):
        sections.append(('%s #%d log' % (p.kind, i + 1), p.log_report()))
    if started:
        lines = pg.log(since=pg_log_start).splitlines()[-PG_LOG_TAIL:]
        sections.append(('postgresql log (this test)', '\n'.join(lines)))
    return sections


@pytest.fixture
def pgtally(request, pg):
    yield from _factory(request, pg, 'pgtally')


@pytest.fixture
def pooler(request, pg):
    yield from _factory(request, pg, 'pgtally')


@pytest.fixture
def pgbouncer(request, pg):
    yield from _factory(request, pg, 'pgbouncer')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    # The poolers are still running in the call phase, so their logs are complete here.
    if rep.when == 'call' and rep.failed:
        for logs in getattr(item, '_pgt_logs', []):
            for title, text in logs():
                rep.sections.append((title, text))
