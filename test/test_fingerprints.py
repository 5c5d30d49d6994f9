"""Per-fingerprint statistics through the pooler: SHOW FINGERPRINTS."""

import psycopg
import pytest


def fingerprints(p):
    return p.admin('SHOW FINGERPRINTS')


def row_for(rows, needle):
    found = [r for r in rows if needle in (r['query'] or '')]
    assert len(found) == 1, (needle, rows)
    return found[0]


def test_same_shape_one_fingerprint_simple_and_extended(pgtally):
    p = pgtally()
    with p.connect() as conn:
        cur = psycopg.ClientCursor(conn)  # simple protocol, literals in the text
        for i in range(3):
            cur.execute('SELECT %s::int + 100 AS shape_one', (i,))
        for i in range(4):  # extended protocol with $1
            conn.execute('SELECT %s::int + 100 AS shape_one', (i,))
        cur.execute('SELECT * FROM generate_series(1, 7) AS shape_rows')
    rows = fingerprints(p)
    r = row_for(rows, 'shape_one')
    assert int(r['calls']) == 7
    assert int(r['rows']) == 7
    assert len(r['fingerprint']) == 16 and int(r['fingerprint'], 16) >= 0
    assert r['database'] == 'app' and r['user'] == 'app'
    assert int(r['total_time_us']) >= int(r['max_time_us']) > 0
    g = row_for(rows, 'shape_rows')
    assert int(g['calls']) == 1 and int(g['rows']) == 7


def test_in_lists_collapse_and_errors_counted(pgtally):
    p = pgtally()
    with p.connect() as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute('SELECT 1 AS inlist WHERE 1 IN (1, 2)')
        cur.execute('SELECT 1 AS inlist WHERE 1 IN (1, 2, 3, 4, 5)')
        for _ in range(2):
            with pytest.raises(psycopg.errors.DivisionByZero):
                cur.execute('SELECT 1/0 AS boom')
        with conn.transaction():
            cur.execute('SELECT 1 AS intxn')
    rows = fingerprints(p)
    assert int(row_for(rows, 'inlist')['calls']) == 2
    boom = row_for(rows, 'boom')
    assert int(boom['errors']) == 2 and int(boom['calls']) == 0
    assert int(row_for(rows, 'intxn')['calls_in_txn']) == 1


def test_ordered_by_total_time_and_reset(pgtally):
    p = pgtally()
    with p.connect() as conn:
        conn.execute('SELECT pg_sleep(0.05) AS slow_one')
        conn.execute('SELECT 1 AS fast_one')
    rows = fingerprints(p)
    times = [int(r['total_time_us']) for r in rows]
    assert times == sorted(times, reverse=True)
    assert 'slow_one' in rows[0]['query']
    assert int(rows[0]['total_time_us']) >= 50000
    p.admin('RESET FINGERPRINTS')
    assert fingerprints(p) == []


def test_bounded_table_evicts_least_called(pgtally):
    p = pgtally(ini={'stats_max_fingerprints': 20})
    with p.connect() as conn:
        for _ in range(5):
            conn.execute('SELECT 1 AS keeper')
        for i in range(60):
            conn.execute('SELECT 1 AS col_%d' % i)
    rows = fingerprints(p)
    assert len(rows) <= 20
    assert any('keeper' in r['query'] for r in rows)


def test_entries_evicted_while_their_statements_run(pgtally):
    # One Query of 60 statements on a table of 20 entries: the later statements' entries
    # evict the earlier ones' before any reply arrives. Each reply must count on its own
    # entry when that survived, never on the memory of an evicted one (which a newer entry
    # may have taken: it would show 2 calls).
    p = pgtally(ini={'stats_max_fingerprints': 20})
    with p.connect() as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute('; '.join('SELECT %d AS inflight_%d' % (i, i) for i in range(60)))
    rows = [r for r in fingerprints(p) if 'inflight_' in (r['query'] or '')]
    assert 0 < len(rows) <= 20
    for r in rows:
        assert int(r['calls']) == 1 and int(r['rows']) == 1, r


def test_query_text_capped_at_track_query_len(pgtally):
    p = pgtally(ini={'track_query_len': 40})
    with p.connect() as conn:
        conn.execute('SELECT 1 AS a_rather_long_column_name, 2 AS another_long_column_name')
    rows = fingerprints(p)
    assert rows and all(len(r['query'].encode()) <= 40 for r in rows)


def test_fingerprints_off(pgtally):
    p = pgtally(ini={'fingerprints': 0})
    with p.connect() as conn:
        assert conn.execute('SELECT 1').fetchone() == (1,)
    assert fingerprints(p) == []


# Statement shapes for the cache test: {n} and {s} are filled with literals of other lengths,
# {list} with a list of constants whose length follows that of {n}.
SHAPES = [
    'SELECT {n} AS sh_a',
    'SELECT 1 AS sh_b WHERE 1 IN ({n}, {n}, {n})',
    "SELECT '{s}' AS sh_c",
    "SELECT 1 AS sh_d /* {s} */",
    'SELECT {n} AS sh_e -- {s}\n',
    'SELECT {n}.25 AS sh_f',
    'select  {n}  as sh_g ;',
    'SELECT "x1".sh_h FROM (SELECT {n} AS sh_h) "x1"',
    "/*route='{s}'*/ SELECT {n} AS sh_i",
    'SELECT {n} AS sh_j; SELECT {n} AS sh_k',
    "SELECT E'{s}' AS sh_l",
    'SELECT $x${s}$x$ AS sh_m',
    "SELECT 1 AS sh_n WHERE 2 IN ({list}) AND 'a' NOT IN ('{s}', 'b')",
]


def fill(template, n, s):
    values = ', '.join(str(i) for i in range(len(str(n))))
    return template.replace('{n}', str(n)).replace('{s}', s).replace('{list}', values)


def test_cached_shapes_fingerprint_like_fresh_text(pgtally):
    """What the shape cache answers (the second round on one pooler) is what a fresh
    normalization gives (one round on a new pooler), statement by statement."""
    warm, fresh = pgtally(), pgtally()
    with warm.connect() as conn:
        cur = psycopg.ClientCursor(conn)
        for n, s in ((7, 'x'), (123456, 'a longer string')):
            for t in SHAPES:
                cur.execute(fill(t, n, s))
    with fresh.connect() as conn:
        cur = psycopg.ClientCursor(conn)
        for t in SHAPES:
            cur.execute(fill(t, 123456, 'a longer string'))
    warm_rows, fresh_rows = fingerprints(warm), fingerprints(fresh)
    warm_calls = {r['fingerprint']: int(r['calls']) for r in warm_rows}
    fresh_calls = {r['fingerprint']: int(r['calls']) for r in fresh_rows}
    assert len(fresh_calls) == len(SHAPES) + 1, fresh_rows  # sh_j/sh_k: two statements
    assert warm_calls == {fp: 2 * calls for fp, calls in fresh_calls.items()}
    assert int(warm.admin('SHOW MEM')[-1]['memtotal']) > 0  # fp_text_cache in use
