"""N+1 detection through the pooler with psycopg 3: prepared statements, notice, error."""

import psycopg
import pytest


def findings(p):
    return p.admin('SHOW NPLUS1')


def loop(conn, n, prepare_threshold=None):
    """1 + n: a list query, then one lookup per row."""
    ids = [r[0] for r in conn.execute('SELECT g FROM generate_series(1, %s) g', (n,))]
    for i in ids:
        conn.execute('SELECT %s::int * 10 AS looked_up', (i,))
    return ids


def test_prepared_statements_crossing_threshold(pgtally):
    # psycopg 3 prepares after prepare_threshold runs: the loop switches from Parse+Bind to
    # Bind of a named statement half-way. It must stay one burst of 8 under one fingerprint.
    p = pgtally()
    conn = psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=3)
    with conn:
        loop(conn, 8)
    rows = [r for r in findings(p) if 'looked_up' in r['query']]
    assert len(rows) == 1, findings(p)
    r = rows[0]
    assert r['kind'] == 'n+1'
    assert int(r['last_calls']) == 8 and int(r['bursts']) == 1
    assert 'generate_series' in r['source_query']
    assert int(r['source_rows']) == 8


def test_below_threshold_not_flagged_and_units_split_by_disconnect(pgtally):
    p = pgtally(ini={'nplus1_threshold': 5})
    for _ in range(3):
        with p.connect() as conn:
            loop(conn, 4)
    assert findings(p) == []


def test_duplicate_and_write_loop(pgtally, pg):
    pg.sql('DROP TABLE IF EXISTS np_w', dbname='app')
    pg.sql('CREATE TABLE np_w (x int)', dbname='app')
    pg.sql('GRANT ALL ON np_w TO app', dbname='app')
    p = pgtally()
    with p.connect() as conn:
        for _ in range(6):
            conn.execute('SELECT 42 AS same_again WHERE %s = 1', (1,))
        for i in range(6):
            conn.execute('INSERT INTO np_w VALUES (%s)', (i,))
    kinds = {r['kind']: r for r in findings(p)}
    assert 'same_again' in kinds['duplicate']['query']
    assert 'np_w' in kinds['write-loop']['query']


def test_notice_action(pgtally):
    p = pgtally(ini={'nplus1_action': 'notice'})
    notices = []
    with p.connect() as conn:
        conn.add_notice_handler(lambda n: notices.append((n.sqlstate, n.message_primary)))
        loop(conn, 6)
    flagged = [n for n in notices if n[0] == 'PT001']
    assert len(flagged) == 1, notices
    assert 'N+1' in flagged[0][1]


def test_error_action_fails_the_crossing_statement(pgtally):
    p = pgtally(ini={'nplus1_action': 'error', 'nplus1_threshold': 3})
    with p.connect() as conn:
        conn.execute('SELECT 1 AS before_loop')
        conn.execute('SELECT %s::int AS again', (1,))
        conn.execute('SELECT %s::int AS again', (2,))
        with pytest.raises(psycopg.Error) as ei:
            conn.execute('SELECT %s::int AS again', (3,))
        assert ei.value.sqlstate == 'PT001'
        # The connection is still usable; inside a transaction the error aborts it.
        assert conn.execute('SELECT 7').fetchone() == (7,)
    with p.connect() as conn:
        conn.execute('BEGIN')
        cur = psycopg.ClientCursor(conn)  # simple protocol this time
        for i in range(2):
            cur.execute('SELECT %s AS txn_loop' % i)
        with pytest.raises(psycopg.Error) as ei:
            cur.execute('SELECT 99 AS txn_loop')
        assert ei.value.sqlstate == 'PT001'
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            cur.execute('SELECT 1')
        conn.execute('ROLLBACK')
    assert any(r['kind'] == 'n+1' for r in findings(p))


def test_error_action_per_database_line(pgtally, pg):
    p = pgtally(databases={'strict': {'host': pg.host, 'port': pg.port, 'dbname': 'app',
                                      'nplus1_action': 'error'}},
                ini={'nplus1_threshold': 3})
    with p.connect(dbname='app') as conn:
        loop(conn, 4)  # default action: log only
    with p.connect(dbname='strict') as conn:
        with pytest.raises(psycopg.Error) as ei:
            loop(conn, 4)
        assert ei.value.sqlstate == 'PT001'


def test_idle_gap_splits_units(pgtally):
    import time
    p = pgtally(ini={'nplus1_idle_gap_ms': 100, 'nplus1_threshold': 4})
    with p.connect() as conn:
        for _ in range(3):
            conn.execute('SELECT %s::int AS gapped', (1,))
        time.sleep(0.3)
        for _ in range(3):
            conn.execute('SELECT %s::int AS gapped', (2,))
    assert findings(p) == []


def test_reset_nplus1(pgtally):
    p = pgtally()
    with p.connect() as conn:
        loop(conn, 6)
    assert findings(p)
    p.admin('RESET NPLUS1')
    assert findings(p) == []


def test_admin_set_changes_the_threshold_at_once(pgtally):
    # The workers keep their N+1 settings worked out; SET on the console must reach them.
    p = pgtally(ini={'nplus1_threshold': 50, 'workers': 2})
    with p.connect() as conn:
        loop(conn, 6)
    assert findings(p) == []
    p.admin('SET nplus1_threshold = 4')
    for _ in range(2):  # with two workers: each connection may land on either
        with p.connect() as conn:
            loop(conn, 6)
    rows = [r for r in findings(p) if 'looked_up' in r['query']]
    assert len(rows) == 1 and int(rows[0]['bursts']) == 2, findings(p)
