"""Transaction-mode pooling with real drivers: multiplexing, limits, parameters, cancel."""

import os
import re
import socket
import threading
import time

import psycopg
import psycopg2
import pytest

from harness.util import backends, wait_for, wait_no_backends

TRUST = {'auth_type': 'trust'}


def test_psycopg3_psycopg2_and_simple_queries(pgtally):
    p = pgtally()
    with p.connect() as conn:
        assert conn.execute('SELECT 1 + 1, current_user').fetchone() == (2, 'app')
    conn2 = psycopg2.connect(p.dsn())
    try:
        cur = conn2.cursor()
        cur.execute('SELECT %s::int * 3', (7,))
        assert cur.fetchone() == (21,)
        conn2.commit()
    finally:
        conn2.close()


def test_200_clients_share_5_servers(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini={'default_pool_size': 5, 'max_client_conn': 400})
    errors = []
    peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], backends(pg))
            time.sleep(0.02)

    def client(i):
        try:
            with p.connect() as conn:
                for j in range(5):
                    row = conn.execute('SELECT %s::int, pg_sleep(0.005)', (i * 10 + j,)).fetchone()
                    assert row[0] == i * 10 + j
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(e))

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    watcher.join()
    assert errors == []
    assert 1 <= peak[0] <= 5, peak[0]
    pools = p.admin('SHOW POOLS')
    app = [r for r in pools if r['database'] == 'app' and r['user'] == 'app'][0]
    assert app['sv_active'] + app['sv_idle'] + app['sv_used'] + app['sv_login'] <= 5


def test_transaction_keeps_its_server_and_others_interleave(pgtally):
    p = pgtally(ini={'default_pool_size': 2})
    with p.connect() as a, p.connect() as b:
        with a.transaction():
            pid1 = a.execute('SELECT pg_backend_pid()').fetchone()[0]
            # b runs on the other server while a's transaction holds one.
            pid_b = b.execute('SELECT pg_backend_pid()').fetchone()[0]
            pid2 = a.execute('SELECT pg_backend_pid()').fetchone()[0]
        assert pid1 == pid2
        assert pid_b != pid1


def test_temp_table_visible_only_inside_transaction(pgtally):
    p = pgtally()
    with p.connect() as conn:
        with conn.transaction():
            conn.execute('CREATE TEMP TABLE t (x int) ON COMMIT DROP')
            conn.execute('INSERT INTO t VALUES (1), (2), (3)')
            assert conn.execute('SELECT sum(x) FROM t').fetchone()[0] == 6


def test_multi_statement_simple_query(pgtally):
    p = pgtally()
    with p.connect() as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute('SELECT 1; SELECT 2; SELECT 3')
        got = [cur.fetchone()[0]]
        while cur.nextset():
            got.append(cur.fetchone()[0])
        assert got == [1, 2, 3]


def test_empty_query_and_notice(pgtally):
    p = pgtally()
    notices = []
    with p.connect() as conn:
        conn.add_notice_handler(lambda n: notices.append(n.message_primary))
        cur = psycopg.ClientCursor(conn)
        cur.execute("DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$")
        assert notices == ['hello from plpgsql']
        # An empty query gets EmptyQueryResponse and the connection stays usable.
        conn.pgconn.send_query(b'')
        res = conn.pgconn.get_result()
        assert res.status == psycopg.pq.ExecStatus.EMPTY_QUERY
        while conn.pgconn.get_result() is not None:
            pass
        assert conn.execute('SELECT 42').fetchone() == (42,)


def test_pipeline_mode_and_error_mid_pipeline(pgtally):
    p = pgtally(ini={'default_pool_size': 1})
    with p.connect() as conn:
        with conn.pipeline():
            curs = [conn.execute('SELECT %s::int', (i,)) for i in range(50)]
        assert [c.fetchone()[0] for c in curs] == list(range(50))

        # An error inside a pipeline: later statements up to Sync are skipped by the server.
        with pytest.raises(psycopg.errors.DivisionByZero):
            with conn.pipeline():
                conn.execute('SELECT 1')
                conn.execute('SELECT 1/0')
                conn.execute('SELECT 2')
        # The pooler's bookkeeping is right: the connection (and server) work afterwards.
        assert conn.execute('SELECT 7').fetchone() == (7,)
    with p.connect() as other:
        assert other.execute("SELECT current_setting('transaction_isolation')").fetchone()
        status = other.execute('SELECT 1').fetchone()
        assert status == (1,)


def test_copy_in_and_out_both_protocols(pgtally, pg):
    pg.sql('DROP TABLE IF EXISTS copy_t', dbname='app')
    pg.sql('CREATE TABLE copy_t (id int, name text)', dbname='app')
    pg.sql('GRANT ALL ON copy_t TO app', dbname='app')
    p = pgtally(ini={'default_pool_size': 1})
    with p.connect() as conn:
        with conn.cursor() as cur:
            with cur.copy('COPY copy_t (id, name) FROM STDIN') as copy:
                for i in range(1000):
                    copy.write_row((i, 'row %d' % i))
            out = []
            with cur.copy('COPY copy_t TO STDOUT') as copy:
                for row in copy.rows():
                    out.append(row)
        assert len(out) == 1000
        assert conn.execute('SELECT count(*) FROM copy_t').fetchone()[0] == 1000
    conn2 = psycopg2.connect(p.dsn())
    try:
        import io
        cur = conn2.cursor()
        cur.copy_expert('COPY copy_t TO STDOUT', buf := io.StringIO())
        assert buf.getvalue().count('\n') == 1000
        cur.copy_expert('COPY copy_t (id, name) FROM STDIN', io.StringIO('5000\tx\n'))
        conn2.commit()
        cur.execute('SELECT count(*) FROM copy_t')
        assert cur.fetchone()[0] == 1001
        conn2.commit()
    finally:
        conn2.close()


def test_client_parameters_follow_each_client(pgtally):
    p = pgtally(ini={'default_pool_size': 1})
    a = psycopg.connect(p.dsn(options='-c TimeZone=UTC', application_name='alpha'),
                        autocommit=True)
    b = psycopg.connect(p.dsn(options='-c TimeZone=Asia/Tokyo', application_name='beta'),
                        autocommit=True)
    try:
        for _ in range(3):
            assert a.execute('SHOW TimeZone').fetchone()[0] == 'UTC'
            assert b.execute('SHOW TimeZone').fetchone()[0] == 'Asia/Tokyo'
            assert a.execute("SELECT current_setting('application_name')").fetchone()[0] == 'alpha'
            assert b.execute("SELECT current_setting('application_name')").fetchone()[0] == 'beta'
        # A SET by the client sticks to that client, not to the server it happened on.
        a.execute("SET DateStyle = 'German'")
        assert a.execute('SHOW DateStyle').fetchone()[0].startswith('German')
        assert b.execute('SHOW DateStyle').fetchone()[0].startswith('ISO')
        assert a.execute('SHOW DateStyle').fetchone()[0].startswith('German')
    finally:
        a.close()
        b.close()


def _db(pg, name, **extra):
    return dict({'host': pg.host, 'port': pg.port, 'dbname': name}, **extra)


# Counts its own runs in a session variable: it must run once per server connection.
COUNTING_QUERY = ("SET work_mem = '7MB'; SELECT set_config('pgtally.cq_runs', "
                  "(coalesce(nullif(current_setting('pgtally.cq_runs', true), ''), '0')::int"
                  " + 1)::text, false)")


def test_connect_query_runs_once_per_server_before_clients(pgtally, pg):
    p = pgtally(ini={'default_pool_size': 1}, databases={
        'app': _db(pg, 'app', connect_query=COUNTING_QUERY),
        'app2': _db(pg, 'app2', connect_query="SET TimeZone = 'Asia/Tokyo'")})
    for _ in range(3):  # one server, three clients in turn: still one run
        with p.connect() as conn:
            assert conn.execute('SHOW work_mem').fetchone() == ('7MB',)
            assert conn.execute("SELECT current_setting('pgtally.cq_runs')").fetchone() == ('1',)
    # Only that database's servers run it.
    with p.connect(dbname='app2') as conn:
        assert conn.execute('SHOW work_mem').fetchone() != ('7MB',)
        # Its ParameterStatus is tracked: the welcome says it, and no SET takes it back.
        assert conn.info.parameter_status('TimeZone') == 'Asia/Tokyo'
        assert conn.execute('SHOW TimeZone').fetchone() == ('Asia/Tokyo',)
    # A client asking for another value still gets its own.
    with p.connect(dbname='app2', options='-c TimeZone=UTC') as conn:
        assert conn.execute('SHOW TimeZone').fetchone() == ('UTC',)
    with p.connect(dbname='app2') as conn:
        assert conn.execute('SHOW TimeZone').fetchone() == ('Asia/Tokyo',)


def test_failing_connect_query_is_logged_and_ignored(pgtally, pg):
    # As in PgBouncer 1.18 ("If the query raises errors, they are logged but ignored
    # otherwise"): the server is used anyway.
    p = pgtally(databases={'app': _db(pg, 'app', connect_query='SELECT 1/0')})
    with p.connect() as conn:
        assert conn.execute('SELECT 42').fetchone() == (42,)
    assert p.wait_for_log(r'app/app: connect_query failed: division by zero')
    assert [s['database'] for s in p.admin('SHOW SERVERS')] == ['app']


def test_connect_query_left_in_a_transaction_closes_the_server(pgtally, pg):
    # A server inside a transaction cannot be pooled: it is closed and the login fails.
    p = pgtally(databases={'app': _db(pg, 'app', connect_query='BEGIN')})
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect()
    assert 'connect_query left the server in a transaction' in str(ei.value)
    assert p.wait_for_log(r'closing because: connect_query left the server in a transaction')


def test_session_mode_keeps_server(pgtally):
    p = pgtally(ini={'pool_mode': 'session', 'default_pool_size': 2})
    with p.connect() as a:
        a.execute("SET work_mem = '7MB'")
        pids = {a.execute('SELECT pg_backend_pid()').fetchone()[0] for _ in range(5)}
        assert len(pids) == 1
        assert a.execute('SHOW work_mem').fetchone()[0] == '7MB'
    # After disconnect the server was reset (DISCARD ALL) before reuse.
    with p.connect() as b:
        assert b.execute('SHOW work_mem').fetchone()[0] == '4MB'


@pytest.mark.parametrize('user_mode', ['transaction', 'statement'])
def test_user_pool_mode_wins_over_the_database_one(pgtally, pg, user_mode):
    """PgBouncer's order: the [users] pool_mode, else the [databases] one, else the global."""
    line = {'host': pg.host, 'port': pg.port, 'dbname': 'app', 'pool_mode': 'session'}
    p = pgtally(ini={'pool_mode': 'session'}, databases={'app': line},
                users={'app': {'pool_mode': user_mode}})
    with p.connect() as a, p.connect(user='md5user') as b:
        a.execute('SELECT 1')
        b.execute('SELECT 1')
        modes = {r['user']: r for r in p.admin('SHOW POOLS') if r['database'] == 'app'}
        assert modes['app']['pool_mode'] == user_mode
        assert modes['md5user']['pool_mode'] == 'session'  # no [users] line: the database's
        # app's server went back to the pool after its transaction; md5user's stays linked.
        assert (modes['app']['sv_active'], modes['app']['sv_idle']) == (0, 1)
        assert (modes['md5user']['sv_active'], modes['md5user']['sv_idle']) == (1, 0)
    # On RELOAD too: the user's line still wins, and removing it gives the database's.
    p.users = {}
    p.write_config()
    p.admin('RELOAD')
    modes = {r['user']: r['pool_mode'] for r in p.admin('SHOW POOLS') if r['database'] == 'app'}
    assert modes['app'] == 'session'
    p.users = {'app': {'pool_mode': user_mode}}
    p.write_config()
    p.admin('RELOAD')
    modes = {r['user']: r['pool_mode'] for r in p.admin('SHOW POOLS') if r['database'] == 'app'}
    assert modes['app'] == user_mode


def test_user_pool_size_wins_over_the_database_one(pgtally, pg):
    """PgBouncer 1.21+'s order: the [users] pool_size, else the [databases] one, else the global."""
    wait_no_backends(pg)
    line = {'host': pg.host, 'port': pg.port, 'dbname': 'app', 'pool_size': 1}
    # query_wait_timeout: a client that waits for a server it should have had fails fast.
    p = pgtally(ini={'default_pool_size': 5, 'query_wait_timeout': 5}, databases={'app': line},
                users={'app': {'pool_size': 2}})

    def pools():
        return {r['user']: r for r in p.admin('SHOW POOLS') if r['database'] == 'app'}

    with p.connect() as a1, p.connect() as a2:
        for c in (a1, a2):
            c.execute('BEGIN')
            c.execute('SELECT 1')
        assert (pools()['app']['sv_active'], pools()['app']['cl_waiting']) == (2, 0)
        a1.rollback()
        a2.rollback()
    # md5user has no [users] line: the database's pool_size of 1 holds, the second one waits.
    with p.connect(user='md5user') as b1, p.connect(user='md5user') as b2:
        b1.execute('BEGIN')
        b1.execute('SELECT 1')
        done = []
        t = threading.Thread(target=lambda: done.append(b2.execute('SELECT 2').fetchone()))
        t.start()
        assert wait_for(lambda: pools()['md5user']['cl_waiting'] == 1), pools()
        assert pools()['md5user']['sv_active'] == 1
        b1.rollback()
        t.join(10)
        assert done == [(2,)]


def test_cancel_reaches_the_running_query(pgtally):
    p = pgtally()
    with p.connect() as conn:
        timer = threading.Timer(0.5, conn.cancel)
        start = time.monotonic()
        timer.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute('SELECT pg_sleep(30)')
        assert time.monotonic() - start < 5
        assert conn.execute('SELECT 1').fetchone() == (1,)


def test_late_cancel_hits_nobody(pgtally):
    p = pgtally(ini={'default_pool_size': 1})
    with p.connect() as a, p.connect() as b:
        a.execute('SELECT 1')  # a's transaction is over; its server went back to the pool
        done = []

        def run_b():
            done.append(b.execute('SELECT pg_sleep(1), 5').fetchone()[1])

        t = threading.Thread(target=run_b)
        t.start()
        time.sleep(0.3)
        a.cancel()  # a is idle: must not cancel b's query on the shared server
        t.join(10)
        assert done == [5]


def test_queue_wait_timeout(pgtally):
    p = pgtally(ini={'default_pool_size': 1, 'query_wait_timeout': 1})
    with p.connect() as holder:
        holder.execute('BEGIN')
        holder.execute('SELECT 1')
        with p.connect() as waiter:
            start = time.monotonic()
            with pytest.raises(psycopg.OperationalError) as ei:
                waiter.execute('SELECT 1')
            assert 'query_wait_timeout' in str(ei.value)
            assert time.monotonic() - start < 5
        holder.execute('ROLLBACK')


@pytest.mark.parametrize('limit, second', [
    ({'max_db_connections': 1}, {'user': 'other', 'dbname': 'app'}),
    ({'max_user_connections': 1}, {'user': 'app', 'dbname': 'app2'}),
], ids=['max_db_connections', 'max_user_connections'])
def test_idle_server_of_another_pool_is_evicted_at_the_limit(pgtally, limit, second):
    """As PgBouncer: at max_db_connections (max_user_connections) an idle server of another
    pool of the same database (user) is closed for a pool whose client waits; otherwise that
    client would wait until query_wait_timeout."""
    p = pgtally(ini=dict(limit, workers=1, query_wait_timeout=5))
    with p.connect() as first:
        first.execute('SELECT 1')  # its server stays idle in the app/app pool
        with p.connect(**second) as conn:
            assert conn.execute('SELECT 2').fetchone() == (2,)
        assert first.execute('SELECT 3').fetchone() == (3,)  # and back again
    reason = '%s reached: the slot goes to %s/%s' % (list(limit)[0], second['dbname'],
                                                     second['user'])
    assert p.wait_for_log(r'S-\d+ app/app: closing because: ' + reason)
    assert p.wait_for_log(r'closing because: %s reached: the slot goes to app/app'
                          % list(limit)[0])


def test_waiting_clients_are_served_in_order(pgtally):
    # First come, first served holds within a worker, not across workers
    # (doc/migrating-from-pgbouncer.md), so one worker even under PGTALLY_WORKERS=2.
    p = pgtally(ini={'default_pool_size': 1, 'workers': 1})
    order = []
    with p.connect() as holder:
        holder.execute('BEGIN')
        holder.execute('SELECT 1')
        conns = [p.connect() for _ in range(3)]
        threads = []
        for i, c in enumerate(conns):
            # Each holds the server a while, so completions are far apart.
            t = threading.Thread(
                target=lambda c=c, i=i: (c.execute('SELECT pg_sleep(0.2)'), order.append(i)))
            t.start()
            threads.append(t)
            time.sleep(0.2)
        holder.execute('COMMIT')
        for t in threads:
            t.join(10)
        for c in conns:
            c.close()
    assert order == [0, 1, 2]


def test_unix_socket(pgtally):
    p = pgtally(ini={'listen_addr': ''})
    with p.connect() as conn:
        assert conn.execute('SELECT 1').fetchone() == (1,)


def test_max_client_conn(pgtally):
    p = pgtally(ini={'max_client_conn': 2})
    a = p.connect()
    b = p.connect()
    try:
        with pytest.raises(psycopg.OperationalError) as ei:
            p.connect()
        assert 'max_client_conn' in str(ei.value)
    finally:
        a.close()
        b.close()
    with p.connect() as c:
        assert c.execute('SELECT 1').fetchone() == (1,)


def test_max_client_conn_console(pgtally):
    # The limit does not keep operators out: the console (both its names) still logs in
    # while app clients fill max_client_conn, as with PgBouncer, and apps are still refused.
    p = pgtally(ini={'max_client_conn': 3})
    held = [p.connect() for _ in range(3)]
    try:
        pools = p.admin('SHOW POOLS')
        app = [r for r in pools if r['database'] == 'app' and r['user'] == 'app']
        assert app and app[0]['cl_active'] + app[0]['cl_waiting'] == 3
        with psycopg.connect(p.dsn(user='admin', dbname='pgbouncer'), autocommit=True) as a:
            assert a.execute('SHOW VERSION').fetchone()
            with pytest.raises(psycopg.OperationalError) as ei:
                p.connect()
            assert 'no more connections allowed (max_client_conn)' in str(ei.value)
        with pytest.raises(psycopg.OperationalError) as ei:
            p.connect()
        assert 'no more connections allowed (max_client_conn)' in str(ei.value)
    finally:
        for c in held:
            c.close()


def test_idle_transaction_timeout(pgtally, pg):
    p = pgtally(ini={'idle_transaction_timeout': 1})
    with p.connect() as conn:
        conn.execute('BEGIN')
        conn.execute('SELECT 1')
        time.sleep(2)
        with pytest.raises(psycopg.OperationalError):
            conn.execute('SELECT 1')
    # The server it held is not left idle in transaction.
    deadline = time.time() + 5
    while time.time() < deadline:
        n = pg.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' "
                   "AND state LIKE 'idle in transaction%%'")[0][0]
        if n == 0:
            break
        time.sleep(0.1)
    assert n == 0


def test_query_timeout(pgtally):
    p = pgtally(ini={'query_timeout': 1})
    with p.connect() as conn:
        start = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as ei:
            conn.execute('SELECT pg_sleep(10)')
        assert 'query_timeout' in str(ei.value)
        assert time.monotonic() - start < 5


def test_client_idle_timeout(pgtally):
    p = pgtally(ini={'client_idle_timeout': 1})
    with p.connect() as conn:
        conn.execute('SELECT 1')
        time.sleep(2)
        with pytest.raises(psycopg.OperationalError):
            conn.execute('SELECT 1')


def test_min_pool_size_prefills(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini={'min_pool_size': 3, 'default_pool_size': 5})
    # Pools are made on first use; after that the janitor keeps min_pool_size servers open.
    with p.connect() as conn:
        conn.execute('SELECT 1')
    deadline = time.time() + 5
    n = 0
    while time.time() < deadline:
        n = backends(pg)
        if n >= 3:
            break
        time.sleep(0.1)
    assert n == 3


def test_server_check_query_runs_after_check_delay(pgtally, pg):
    pg.sql("ALTER SYSTEM SET log_statement = 'all'")
    pg.sql('SELECT pg_reload_conf()')
    try:
        p = pgtally(ini={'server_check_delay': 0, 'server_check_query': 'SELECT 4242'})
        with p.connect() as conn:
            conn.execute('SELECT 1')
            conn.execute('SELECT 2')
        assert 'statement: SELECT 4242' in pg.log()
    finally:
        pg.sql('ALTER SYSTEM RESET log_statement')
        pg.sql('SELECT pg_reload_conf()')


def test_server_check_query_drops_dead_server(pgtally, pg):
    p = pgtally(ini={'server_check_delay': 0, 'default_pool_size': 1})
    with p.connect() as conn:
        pid = conn.execute('SELECT pg_backend_pid()').fetchone()[0]
        # Whether pgtally sees the EOF first or the check query finds the server dead, the
        # client's next query runs on a fresh server.
        pg.sql('SELECT pg_terminate_backend(%s)', (pid,))
        assert conn.execute('SELECT 1').fetchone() == (1,)


def test_bad_parameter_in_startup_options_is_refused(pgtally):
    p = pgtally()
    with pytest.raises(psycopg.OperationalError) as ei:
        with psycopg.connect(p.dsn(options='-c TimeZone=No/Such_Zone'), autocommit=True) as c:
            c.execute('SELECT 1')
    assert 'invalid connection parameter' in str(ei.value)
    assert 'No/Such_Zone' in str(ei.value)
    with p.connect() as conn:
        assert conn.execute('SELECT 1').fetchone() == (1,)


def test_application_name_add_host(pgtally):
    p = pgtally(ini={'application_name_add_host': 1})
    with psycopg.connect(p.dsn(application_name='web'), autocommit=True) as conn:
        name = conn.execute("SELECT current_setting('application_name')").fetchone()[0]
    assert name.startswith('web - 127.0.0.1:'), name


def test_server_round_robin_spreads_over_servers(pgtally):
    p = pgtally(ini={'server_round_robin': 1, 'default_pool_size': 3, 'min_pool_size': 3})
    with p.connect() as conn:
        conn.execute('SELECT 1')
        time.sleep(0.5)  # the janitor opens the other two
        pids = {conn.execute('SELECT pg_backend_pid()').fetchone()[0] for _ in range(9)}
    assert len(pids) == 3


def test_log_stats_line(pgtally):
    p = pgtally(ini={'log_stats': 1, 'stats_period': 1})
    with p.connect() as conn:
        conn.execute('SELECT 1')
    assert p.wait_for_log(r'stats: app/app \d+ xacts/s')


def test_connection_log_lines(pgtally):
    """Login and close lines name the client as PgBouncer's do: id, db/user@address:port; in
    the logfile and on stderr alike, with the timestamp, pid and level in front."""
    p = pgtally()
    with p.connect() as conn:
        conn.execute('SELECT 1')
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as s:
            port = s.getsockname()[1]
    with psycopg.connect(p.dsn(host=p.unix_socket_dir)) as conn:
        conn.execute('SELECT 1')
    stamp = r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[%d\] LOG ' % p.pid
    who = r'C-\d+ app/app@127\.0\.0\.1:%d ' % port
    assert p.wait_for_log(who + r'closing because: client sent Terminate \(age=\d+s\)')
    assert p.wait_for_log(r'C-\d+ app/app@unix:0 closing because')
    for path in (p.logfile, p.stderr_path):
        with open(path) as f:
            text = f.read()
        assert re.search('^' + stamp + who + 'login: db=app user=app$', text, re.M), path
        assert re.search('^' + stamp + r'C-\d+ app/app@unix:0 login: db=app user=app$',
                         text, re.M), path


def test_function_call_message(pgtally):
    # FunctionCall ('F'): int4pl(40, 2) by OID, text result; answered by 'V' then 'Z'.
    import struct

    import rawpg
    p = pgtally(ini={'auth_type': 'trust'})
    c = rawpg.Conn(p.host, p.port)
    rawpg.login_trust(c, 'app', 'app')
    body = struct.pack('!IHH', 177, 1, 0)  # oid of int4pl, one format code: text
    body += struct.pack('!H', 2)
    for v in (b'40', b'2'):
        body += struct.pack('!I', len(v)) + v
    body += struct.pack('!H', 0)
    c.send(rawpg.message('F', body))
    msgs = c.read_until('Z')
    assert [m[0] for m in msgs] == ['V', 'Z']
    assert msgs[0][1][4:] == b'42'
    c.send(rawpg.query('SELECT 1'))
    assert [m[0] for m in c.read_until('Z')] == ['T', 'D', 'C', 'Z']


def test_notification_response_reaches_the_client(pgtally):
    p = pgtally(ini={'default_pool_size': 1})
    got = []
    with p.connect() as conn:
        conn.add_notify_handler(lambda n: got.append((n.channel, n.payload)))
        with conn.transaction():
            conn.execute('LISTEN pgt_chan')
            conn.execute("NOTIFY pgt_chan, 'hello'")
        # Delivered at commit, on the same server session, before ReadyForQuery.
        conn.execute('SELECT 1')
    assert got == [('pgt_chan', 'hello')]


@pytest.mark.parametrize('sql,warned', [
    ("SET work_mem = '64MB'", 'SET work_mem'),
    ("SET SESSION statement_timeout TO 5000", 'SET statement_timeout'),
    ('LISTEN some_channel', None),               # keeps its server instead (test_handoff)
    ("SET TimeZone = 'UTC'", None),            # tracked: pgtally sets it per client
    ("SET application_name = 'x'", None),     # tracked
])
def test_session_state_in_transaction_mode_warns(pgtally, sql, warned):
    p = pgtally()
    notices = []
    with p.connect() as conn:
        conn.add_notice_handler(lambda n: notices.append(n.message_primary))
        psycopg.ClientCursor(conn).execute(sql)
        # Inside a transaction, SET LOCAL and friends are fine and say nothing.
        with conn.transaction():
            psycopg.ClientCursor(conn).execute("SET LOCAL work_mem = '8MB'")
    mine = [n for n in notices if n.startswith('pgtally:')]
    if warned:
        assert len(mine) == 1 and warned in mine[0], notices
        assert warned in p.log()
    else:
        assert mine == [], notices


def test_session_mode_does_not_warn(pgtally):
    p = pgtally(ini={'pool_mode': 'session'})
    notices = []
    with p.connect() as conn:
        conn.add_notice_handler(lambda n: notices.append(n.message_primary))
        psycopg.ClientCursor(conn).execute("SET work_mem = '64MB'")
    assert [n for n in notices if n.startswith('pgtally:')] == []
