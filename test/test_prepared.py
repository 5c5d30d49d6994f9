"""Named prepared statements in transaction mode: they work whichever server a client gets."""

import os
import re
import subprocess
import struct
import threading

import psycopg
import pytest

import rawpg
from rawpg import SYNC, bind, close_stmt, data_values, describe_stmt, execute, parse, trust_conn

PGBENCH = '/usr/lib/postgresql/15/bin/pgbench'


@pytest.fixture(scope='module')
def bench_db(pg):
    env = dict(os.environ, PGPASSWORD='app_pw')
    subprocess.run([PGBENCH, '-i', '-s', '1', '-q', '-h', pg.host, '-p', str(pg.port),
                    '-U', 'app', 'app'], check=True, env=env, capture_output=True)
    return pg


def test_pgbench_prepared_50_clients_5_servers(pgtally, bench_db):
    p = pgtally(ini={'default_pool_size': 5, 'max_client_conn': 200})
    env = dict(os.environ, PGPASSWORD='app_pw')
    r = subprocess.run([PGBENCH, '-h', p.host, '-p', str(p.port), '-U', 'app', '-S', '-M',
                        'prepared', '-c', '50', '-j', '2', '-t', '200', 'app'],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    done = int(re.search(r'actually processed: (\d+)', r.stdout).group(1))
    assert done == 50 * 200
    failed = re.search(r'number of failed transactions: (\d+)', r.stdout)
    assert failed is None or int(failed.group(1)) == 0
    stats = p.admin('SHOW STATS')
    app = [row for row in stats if row['database'] == 'app'][0]
    # Each client parsed its statement once, but servers needed far fewer Parses.
    assert app['total_client_parse_count'] >= 50
    assert app['total_server_parse_count'] < app['total_client_parse_count'] + 50


def test_psycopg3_prepared_100_clients_on_3_servers(pgtally):
    p = pgtally(ini={'default_pool_size': 3, 'max_client_conn': 200})
    errors = []

    def client(i):
        try:
            conn = psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=0)
            with conn:
                for j in range(10):
                    a = conn.execute('SELECT %s::int + 1', (i * 100 + j,)).fetchone()[0]
                    assert a == i * 100 + j + 1
                    b = conn.execute("SELECT %s::text || '-x'", ('c%d' % i,)).fetchone()[0]
                    assert b == 'c%d-x' % i
                    with conn.transaction():
                        c = conn.execute('SELECT count(*) FROM generate_series(1, %s)',
                                         (j + 1,)).fetchone()[0]
                        assert c == j + 1
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []


def test_eviction_with_max_prepared_statements_2(pgtally, pg):
    p = pgtally(ini={'default_pool_size': 1, 'max_prepared_statements': 2})
    conn = psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=0)
    with conn:
        for rounds in range(3):
            for k in range(5):
                sql = 'SELECT %s::int * ' + str(k + 1)
                assert conn.execute(sql, (rounds,)).fetchone()[0] == rounds * (k + 1)
        backend = conn.execute('SELECT pg_backend_pid()').fetchone()[0]
    # The single server never held more than 2 of pgtally's statements.
    servers = p.admin('SHOW SERVERS')
    assert all(s['prepared_statements'] <= 2 for s in servers), servers
    assert backend


def test_pipeline_without_sync_between(pgtally):
    p = pgtally(ini={'auth_type': 'trust', 'default_pool_size': 1})
    c = trust_conn(p)
    msg = parse('s1', 'SELECT $1::int * 2', (23,))
    msg += (bind('s1', (1,)) + execute()) + (bind('s1', (2,)) + execute())
    msg += parse('s2', "SELECT $1::text || '!'")
    msg += bind('s2', ('hi',)) + execute() + bind('s1', (21,)) + execute() + SYNC
    c.send(msg)
    msgs = c.read_until('Z')
    assert data_values(msgs) == ['2', '4', 'hi!', '42']
    assert [m[0] for m in msgs].count('1') == 2  # ParseComplete for each client Parse
    # A second client gets the same server, which already has both statements.
    c2 = trust_conn(p)
    c2.send(parse('other_name', 'SELECT $1::int * 2', (23,)) + bind('other_name', (5,)) +
            execute() + SYNC)
    msgs = c2.read_until('Z')
    assert [m[0] for m in msgs] == ['1', '2', 'D', 'C', 'Z']
    assert data_values(msgs) == ['10']
    # The first client's names still work on later transactions.
    c.send(bind('s2', ('again',)) + execute() + SYNC)
    assert data_values(c.read_until('Z')) == ['again!']


def test_parse_error_mid_pipeline(pgtally):
    p = pgtally(ini={'auth_type': 'trust', 'default_pool_size': 1})
    c = trust_conn(p)
    c.send(parse('good', 'SELECT 1') + bind('good') + execute() +
           parse('bad', 'SELEC nonsense') + bind('bad') + execute() +
           parse('later', 'SELECT 3') + SYNC)
    msgs = c.read_until('Z')
    types = [m[0] for m in msgs]
    assert types == ['1', '2', 'D', 'C', 'E', 'Z']
    # The failed Parse and the skipped one left no names behind.
    c.send(bind('bad') + execute() + SYNC)
    msgs = c.read_until('Z')
    assert msgs[0][0] == 'E' and rawpg.error_fields(msgs[0][1])['C'] == '26000'
    c.send(bind('later') + execute() + SYNC)
    msgs = c.read_until('Z')
    assert msgs[0][0] == 'E' and rawpg.error_fields(msgs[0][1])['C'] == '26000'
    # The good one still works, and the same name can be parsed again for the bad ones.
    c.send(bind('good') + execute() + parse('later', 'SELECT 3') + bind('later') + execute() +
           SYNC)
    assert data_values(c.read_until('Z')) == ['1', '3']


def test_name_reuse_and_unknown_names(pgtally):
    p = pgtally(ini={'auth_type': 'trust'})
    c = trust_conn(p)
    c.send(parse('n', 'SELECT 1') + SYNC)
    assert [m[0] for m in c.read_until('Z')] == ['1', 'Z']
    c.send(parse('n', 'SELECT 2') + bind('n') + execute() + SYNC)
    msgs = c.read_until('Z')
    assert [m[0] for m in msgs] == ['E', 'Z']
    f = rawpg.error_fields(msgs[0][1])
    assert f['C'] == '42P05' and '"n"' in f['M']
    c.send(bind('nope') + execute() + SYNC)
    msgs = c.read_until('Z')
    assert [m[0] for m in msgs] == ['E', 'Z']
    assert rawpg.error_fields(msgs[0][1])['C'] == '26000'
    c.send(describe_stmt('nope') + SYNC)
    msgs = c.read_until('Z')
    assert rawpg.error_fields(msgs[0][1])['C'] == '26000'
    # Close frees the name (closing an unknown name is fine, as in PostgreSQL).
    c.send(close_stmt('n') + close_stmt('never') + parse('n', 'SELECT 2') + bind('n') +
           execute() + SYNC)
    msgs = c.read_until('Z')
    assert [m[0] for m in msgs] == ['3', '3', '1', '2', 'D', 'C', 'Z']
    assert data_values(msgs) == ['2']


def test_describe_statement(pgtally):
    p = pgtally(ini={'auth_type': 'trust'})
    c = trust_conn(p)
    c.send(parse('d', 'SELECT $1::int AS x, 2 AS y') + describe_stmt('d') + SYNC)
    msgs = c.read_until('Z')
    assert [m[0] for m in msgs] == ['1', 't', 'T', 'Z']


def test_deallocate_and_discard_all(pgtally):
    p = pgtally(ini={'default_pool_size': 1})
    conn = psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=0)
    with conn:
        assert conn.execute('SELECT %s::int', (1,)).fetchone() == (1,)
        name = next(iter(conn._prepared._names.values())).decode()
        cur = psycopg.ClientCursor(conn)
        cur.execute('DEALLOCATE ' + name)
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            cur.execute('DEALLOCATE ' + name)
        cur.execute('DEALLOCATE ALL')
        cur.execute('DISCARD ALL')
        conn._prepared.clear()
        assert conn.execute('SELECT %s::int', (2,)).fetchone() == (2,)


def test_sql_level_prepare_warns(pgtally):
    p = pgtally()
    notices = []
    with p.connect() as conn:
        conn.add_notice_handler(lambda n: notices.append(n.message_primary))
        cur = psycopg.ClientCursor(conn)
        with conn.transaction():
            cur.execute('PREPARE q AS SELECT 42')
            cur.execute('EXECUTE q')
            assert cur.fetchone() == (42,)
    assert any('PREPARE' in n for n in notices), notices
    assert 'SQL-level PREPARE' in p.log()


def test_ddl_change_gives_postgres_error_then_recovers(pgtally, pg):
    pg.sql('DROP TABLE IF EXISTS ddl_t', dbname='app')
    pg.sql('CREATE TABLE ddl_t (a int)', dbname='app')
    pg.sql('GRANT ALL ON ddl_t TO app', dbname='app')
    pg.sql('INSERT INTO ddl_t VALUES (1)', dbname='app')
    p = pgtally(ini={'default_pool_size': 1})
    conn = psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=0)
    with conn:
        assert conn.execute('SELECT * FROM ddl_t').fetchone() == (1,)
        pg.sql('ALTER TABLE ddl_t ADD COLUMN b int DEFAULT 2', dbname='app')
        with pytest.raises(psycopg.errors.FeatureNotSupported) as ei:
            conn.execute('SELECT * FROM ddl_t').fetchone()
        assert 'cached plan must not change result type' in str(ei.value)
        # The same name works again at once (pgtally prepared it anew), and so does a
        # fresh prepare of the same text under another name.
        assert conn.execute('SELECT * FROM ddl_t').fetchone() == (1, 2)
        conn._prepared.clear()
        assert conn.execute('SELECT * FROM ddl_t').fetchone() == (1, 2)


def test_per_client_prepared_statement_cap(pgtally):
    p = pgtally(ini={'auth_type': 'trust', 'default_pool_size': 1})
    c = trust_conn(p)
    batch = b''.join(parse('cap%d' % i, 'SELECT %d' % i) for i in range(10000)) + SYNC
    c.send(batch)
    msgs = c.read_until('Z')
    assert [m[0] for m in msgs].count('1') == 10000
    c.send(parse('one_too_many', 'SELECT 1') + SYNC)
    msgs = c.read_until('Z')
    assert msgs[0][0] == 'E' and rawpg.error_fields(msgs[0][1])['C'] == '53400'
    # Closing one makes room again.
    c.send(close_stmt('cap0') + parse('one_too_many', 'SELECT 1') + SYNC)
    assert [m[0] for m in c.read_until('Z')] == ['3', '1', 'Z']


def test_show_clients_and_servers_count_prepared_statements(pgtally):
    p = pgtally(ini={'default_pool_size': 1})
    conn = psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=0)
    with conn:
        for k in range(3):
            conn.execute('SELECT %s::int + ' + str(k), (1,))
        clients = [c for c in p.admin('SHOW CLIENTS') if c['database'] == 'app']
        assert [c['prepared_statements'] for c in clients] == [3]
        servers = [s for s in p.admin('SHOW SERVERS') if s['database'] == 'app']
        assert [s['prepared_statements'] for s in servers] == [3]
