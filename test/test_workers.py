"""test_workers: several event loops in threads (workers = N): pool limits held across
workers, clients spread over them (SO_REUSEPORT for TCP, round robin for the unix socket),
statistics summed over workers, cancels that land on another worker, and the console and
signals acting on every worker.

Which worker serves a connection: the cancel key's pid that pgtally hands out
(BackendKeyData, psycopg's conn.info.backend_pid) carries the worker's number in bits 24..30
(src/client.c), which lets a test see the spread without asking the console."""

import http.client
import re
import signal
import threading
import time

import psycopg
import pytest

import rawpg
from harness import util
from harness.util import Background, wait_for, wait_no_backends

JOIN_TIMEOUT = 120      # liveness bound for the load threads, not a performance figure


# ---------------------------------------------------------------------- helpers

def worker_of(conn):
    """The worker a connection is on, from the pid of its cancel key."""
    return (conn.info.backend_pid >> 24) & 0x7f


def workers_of(conns):
    return sorted({worker_of(c) for c in conns})


def connect_spread(p, n, nworkers, tries=5, **kwargs):
    """n connections that, together, are on every one of the nworkers workers (a new draw
    when the kernel's hashing happened to leave a worker out)."""
    for _ in range(tries):
        conns = [p.connect(**kwargs) for _ in range(n)]
        if workers_of(conns) == list(range(nworkers)):
            return conns
        close_all(conns)
    raise AssertionError('%d connections never covered all %d workers (seen: %s)' % (
        n, nworkers, workers_of(conns)))


def close_all(conns):
    for c in conns:
        try:
            c.close()
        except Exception:  # noqa: BLE001 - closing what may already be broken
            pass


class PeakWatcher:
    """Samples the pool's backends in pg_stat_activity from a direct connection while a load
    runs; .peak is the most seen at once."""

    QUERY = ("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s "
             "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")

    def __init__(self, pg, dbname='app', user='app'):
        self.conn = pg.superuser()
        self.args = (dbname, user)
        self.peak = 0
        self.samples = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_event.is_set():
            n = self.conn.execute(self.QUERY, self.args).fetchone()[0]
            self.peak = max(self.peak, n)
            self.samples += 1
            time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(10)
        self.conn.close()


def run_threads(fns, timeout=JOIN_TIMEOUT):
    """Run each function in a thread; the errors they raised (repr), and whether any thread
    is still running after timeout (a hang)."""
    errors = []

    def wrap(fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - collected and asserted by the caller
            errors.append(repr(e))

    threads = [threading.Thread(target=wrap, args=(fn,), daemon=True) for fn in fns]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    hung = sum(t.is_alive() for t in threads)
    return errors, hung


def show_workers(p):
    return sorted(p.admin('SHOW WORKERS'), key=lambda r: int(r['worker']))


def pool_rows(p, db='app', user='app'):
    return [r for r in p.admin('SHOW POOLS') if r['database'] == db and r['user'] == user]


def pool_row(p, db='app', user='app'):
    rows = pool_rows(p, db, user)
    assert len(rows) == 1, rows
    return rows[0]


def state(p):
    return {r['key']: r['value'] for r in p.admin('SHOW STATE')}


def unique_values_load(p, nclients, txns, sleep=None):
    """nclients threads, each on its own connection running txns short transactions that
    return a value only that client asks for; the functions for run_threads()."""
    got = {}

    def client(i):
        def run():
            with p.connect() as conn:
                mine = []
                for j in range(txns):
                    want = 'c%d-t%d' % (i, j)
                    with conn.transaction():
                        if sleep:
                            conn.execute('SELECT pg_sleep(%s)', (sleep,))
                        row = conn.execute('SELECT %s::text, pg_backend_pid()',
                                           (want,)).fetchone()
                    assert row[0] == want, (want, row)
                    mine.append(row[0])
                got[i] = (mine, worker_of(conn))
        return run
    return got, [client(i) for i in range(nclients)]


# ---------------------------------------------------------------------- pooling

@pytest.mark.parametrize('nworkers', [2, 4])
def test_100_clients_on_a_pool_of_5(pgtally, pg, nworkers):
    wait_no_backends(pg)
    p = pgtally(ini={'workers': nworkers, 'default_pool_size': 5, 'max_client_conn': 400,
                     'query_wait_timeout': 60})
    txns = 5
    got, fns = unique_values_load(p, 100, txns)
    with PeakWatcher(pg) as watch:
        errors, hung = run_threads(fns)
    assert errors == [] and hung == 0, (errors[:5], hung)
    for i in range(100):
        assert got[i][0] == ['c%d-t%d' % (i, j) for j in range(txns)], got.get(i)
    # The clients were served by every worker, and the pool limit held over all of them.
    assert sorted({w for _, w in got.values()}) == list(range(nworkers))
    assert watch.samples > 0
    assert 1 <= watch.peak <= 5, watch.peak
    rows = pool_rows(p)
    assert len(rows) == 1, rows
    r = rows[0]
    assert r['sv_active'] + r['sv_idle'] + r['sv_used'] + r['sv_tested'] + r['sv_login'] <= 5
    assert len(show_workers(p)) == nworkers


def test_tcp_clients_spread_over_workers(pgtally):
    p = pgtally(ini={'workers': 2, 'max_client_conn': 100})
    conns = [p.connect() for _ in range(40)]
    try:
        for c in conns:
            c.execute('SELECT 1')
        mine = [0, 0]
        for c in conns:
            mine[worker_of(c)] += 1
        rows = show_workers(p)
        assert [int(r['worker']) for r in rows] == [0, 1], rows
        for r in rows:
            assert int(r['clients']) > 0, rows
            # Each worker counts at least our connections on it (the console's own may add one).
            assert int(r['clients']) >= mine[int(r['worker'])], (rows, mine)
            assert int(r['pools']) >= 1, rows
        assert 40 <= sum(int(r['clients']) for r in rows) <= 41, rows
        assert sum(int(r['servers']) for r in rows) <= 5, rows
        assert pool_row(p)['cl_active'] == 40
    finally:
        close_all(conns)


def test_unix_socket_clients_round_robin(pgtally):
    p = pgtally(ini={'workers': 2, 'listen_addr': '', 'max_client_conn': 100})
    conns = [p.connect() for _ in range(40)]
    try:
        for c in conns:
            assert c.execute('SELECT 1').fetchone() == (1,)
        mine = [0, 0]
        for c in conns:
            mine[worker_of(c)] += 1
        # Dealt out in turn: both workers get half (give or take the harness's and the
        # console's own connections, which are dealt out too).
        assert abs(mine[0] - mine[1]) <= 2, mine
        rows = show_workers(p)
        assert [int(r['worker']) for r in rows] == [0, 1], rows
        assert all(int(r['clients']) > 0 for r in rows), rows
        assert 40 <= sum(int(r['clients']) for r in rows) <= 41, rows
    finally:
        close_all(conns)


@pytest.mark.parametrize('limit', [
    {'default_pool_size': 4},
    {'default_pool_size': 10, 'max_db_connections': 3},
    {'default_pool_size': 10, 'max_user_connections': 3},
], ids=['pool_size', 'max_db_connections', 'max_user_connections'])
def test_limit_held_across_workers_without_starvation(pgtally, pg, limit):
    # Every client has to get its turn: a worker whose clients wait while the servers are
    # held by the other worker must get some of them (rebalancing), or its clients would
    # time out.
    wait_no_backends(pg)
    most = min(limit.values())
    ini = dict(limit, workers=2, max_client_conn=100, query_wait_timeout=30)
    p = pgtally(ini=ini)
    got, fns = unique_values_load(p, 40, 20, sleep=0.01)
    with PeakWatcher(pg) as watch:
        errors, hung = run_threads(fns)
    assert errors == [] and hung == 0, (errors[:5], hung)
    assert len(got) == 40 and all(len(v[0]) == 20 for v in got.values())
    assert sorted({w for _, w in got.values()}) == [0, 1]
    assert 1 <= watch.peak <= most, (watch.peak, limit)
    r = pool_row(p)
    assert r['cl_waiting'] == 0
    assert r['sv_active'] + r['sv_idle'] + r['sv_used'] + r['sv_tested'] + r['sv_login'] <= most


def test_max_client_conn_across_workers(pgtally):
    p = pgtally(ini={'workers': 2, 'max_client_conn': 10})
    conns = connect_spread(p, 10, 2)
    try:
        for c in conns:
            c.execute('SELECT 1')
        # Whichever worker takes them, the 11th (and 12th...) client is one too many.
        for _ in range(4):
            raw = rawpg.Conn(p.host, p.port)
            try:
                raw.send(rawpg.startup_packet({'user': 'app', 'database': 'app'}))
                kind, body = raw.read_message()
                assert kind == 'E', (kind, body)
                fields = rawpg.error_fields(body)
                assert fields['C'] == '53300', fields
                assert 'max_client_conn' in fields['M'], fields
            finally:
                raw.close()
        with pytest.raises(psycopg.OperationalError, match='max_client_conn'):
            p.connect()
    finally:
        close_all(conns)
    # Every slot is given back, on both workers.
    assert wait_for(lambda: _can_connect(p))
    conns = connect_spread(p, 10, 2)
    close_all(conns)


def _can_connect(p):
    try:
        with p.connect() as conn:
            return conn.execute('SELECT 1').fetchone() == (1,)
    except psycopg.OperationalError:
        return False


# ---------------------------------------------------------------------- statistics

def test_fingerprints_summed_over_workers(pgtally):
    p = pgtally(ini={'workers': 2, 'max_client_conn': 100})
    k = 7
    conns = connect_spread(p, 40, 2)
    try:
        def run(conn):
            def fn():
                for i in range(k):
                    conn.execute('SELECT %s::int AS fp_all_workers', (i,))
            return fn
        errors, hung = run_threads([run(c) for c in conns])
        assert errors == [] and hung == 0, (errors[:5], hung)
    finally:
        close_all(conns)
    rows = [r for r in p.admin('SHOW FINGERPRINTS') if 'fp_all_workers' in (r['query'] or '')]
    assert len(rows) == 1, rows
    r = rows[0]
    assert int(r['calls']) == 40 * k, r
    assert int(r['rows']) == 40 * k, r
    assert r['database'] == 'app' and r['user'] == 'app'
    # Both workers kept statistics of their own, which the console added up.
    per_worker = show_workers(p)
    assert all(int(w['fingerprints']) >= 1 for w in per_worker), per_worker


def test_nplus1_findings_summed_over_workers(pgtally):
    p = pgtally(ini={'workers': 2, 'max_client_conn': 100})
    n = 8
    routes = ('wk_books', 'wk_authors')
    conns = connect_spread(p, 20, 2)
    try:
        def run(conn, route):
            tag = " /*route='%s'*/" % route

            def fn():
                ids = [r[0] for r in conn.execute(
                    'SELECT g AS wk_list FROM generate_series(1, %s) g' + tag, (n,))]
                for i in ids:
                    conn.execute('SELECT %s::int * 10 AS wk_looked_up' + tag, (i,))
            return fn
        errors, hung = run_threads([run(c, routes[i % 2]) for i, c in enumerate(conns)])
        assert errors == [] and hung == 0, (errors[:5], hung)
    finally:
        close_all(conns)
    rows = [r for r in p.admin('SHOW NPLUS1') if 'wk_looked_up' in (r['query'] or '')]
    keys = [(r['kind'], r['route'], r['fingerprint']) for r in rows]
    assert len(keys) == len(set(keys)) == 2, rows
    assert sorted(r['route'] for r in rows) == sorted(routes), rows
    assert len({r['fingerprint'] for r in rows}) == 1, rows
    for r in rows:
        assert r['kind'] == 'n+1', r
        # Ten clients per route, each one burst of n lookups, whichever worker served them.
        assert int(r['bursts']) == 10, r
        assert int(r['total_calls']) == 10 * n, r
        assert int(r['max_calls']) == n and int(r['last_calls']) == n, r
        assert 'wk_list' in (r['source_query'] or ''), r
    per_worker = show_workers(p)
    assert all(int(w['nplus1_findings']) >= 1 for w in per_worker), per_worker


def test_metrics_total_over_workers(pgtally):
    port = util.free_port()
    p = pgtally(ini={'workers': 2, 'max_client_conn': 100,
                     'metrics_listen': '127.0.0.1:%d' % port})
    conns = connect_spread(p, 40, 2)
    try:
        for c in conns:
            c.execute('SELECT 1')
        body = _scrape(port)
    finally:
        close_all(conns)
    lbl = {'database': 'app', 'user': 'app'}
    assert _value(body, 'pgtally_client_connections') == 40, body
    assert _value(body, 'pgtally_databases_current_client_connections', database='app') == 40
    assert _value(body, 'pgtally_pools_client_active_connections', **lbl) == 40
    # connect_spread may have drawn more than once: at least the 40 logins we hold.
    assert _value(body, 'pgtally_stats_client_logins_total', **lbl) >= 40
    assert _value(body, 'pgtally_stats_queries_total', **lbl) >= 40
    servers = _value(body, 'pgtally_server_connections')
    assert 1 <= servers <= 5, servers


def _scrape(port):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    try:
        conn.request('GET', '/metrics')
        resp = conn.getresponse()
        assert resp.status == 200
        return resp.read().decode()
    finally:
        conn.close()


def _value(body, name, **labels):
    """The value of the sample name{labels} (all its labels given), None when absent."""
    want = frozenset(labels.items())
    for line in body.splitlines():
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = frozenset(re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"', m.group(3) or ''))
        if got == want:
            return float(m.group(4))
    return None


# ---------------------------------------------------------------------- cancel

def test_cancel_lands_on_any_worker(pgtally, pg):
    # psycopg's cancel() opens a new connection, which the kernel may hand to either worker.
    p = pgtally(ini={'workers': 2, 'default_pool_size': 20, 'max_client_conn': 100})
    conns = connect_spread(p, 20, 2)
    try:
        outcome = {}

        def sleeper(i, conn):
            def fn():
                start = time.monotonic()
                try:
                    conn.execute('SELECT pg_sleep(30)')
                    outcome[i] = 'finished'
                except psycopg.errors.QueryCanceled:
                    outcome[i] = time.monotonic() - start
            return fn
        threads = [Background(sleeper(i, c)) for i, c in enumerate(conns)]
        assert wait_for(lambda: pg.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' "
            "AND state = 'active'")[0][0] == 20, 15)
        for c in conns:
            c.cancel()
        for t in threads:
            assert t.done.wait(10), 'a query was not canceled'
            assert t.error is None, t.error
        assert sorted(outcome) == list(range(20)) and 'finished' not in outcome.values()
        for c in conns:
            assert c.execute('SELECT 1').fetchone() == (1,)
        # A server handed to the other worker right after its login is not a failed login:
        # that would hold new connections back for server_login_retry (15 s) and fail the
        # clients waiting for one.
        log = p.log()
        assert 'server login failed' not in log
        assert not re.search(r'WARNING S-\d+ \S+: closing because: given to another worker', log)
    finally:
        close_all(conns)


# ---------------------------------------------------------------------- console and signals

@pytest.mark.parametrize('how', ['console', 'signals'])
def test_pause_and_resume_every_worker(pgtally, how):
    p = pgtally(ini={'workers': 2, 'default_pool_size': 5})
    conns = connect_spread(p, 10, 2)
    try:
        for c in conns:
            c.execute('SELECT 1')
        if how == 'console':
            p.admin('PAUSE')
        else:
            p.signal(signal.SIGUSR1)
        assert wait_for(lambda: state(p)['paused'] == 'yes')
        queries = [Background(lambda c=c, i=i: c.execute('SELECT %s::int', (i,)).fetchone()[0])
                   for i, c in enumerate(conns)]
        # Held on both workers: every one of the ten waits.
        assert wait_for(lambda: pool_row(p)['cl_waiting'] == 10), pool_row(p)
        assert not any(q.done.is_set() for q in queries)
        if how == 'console':
            p.admin('RESUME')
        else:
            p.signal(signal.SIGUSR2)
        for i, q in enumerate(queries):
            assert q.done.wait(10), 'client %d still held after RESUME' % i
            assert q.error is None and q.result == i, q.error
        assert state(p)['paused'] == 'no'
        assert pool_row(p)['cl_waiting'] == 0
    finally:
        close_all(conns)


def _pair_on_two_workers(p):
    """Two connections on different workers."""
    conns = connect_spread(p, 2, 2, tries=20)
    return conns[0], conns[1]


@pytest.mark.parametrize('how', ['RELOAD', 'SIGHUP'])
def test_reload_reaches_every_worker(pgtally, how):
    p = pgtally(ini={'workers': 2, 'default_pool_size': 1})
    a, b = _pair_on_two_workers(p)
    try:
        a.execute('BEGIN')
        a.execute('SELECT 1')
        q = Background(lambda: b.execute('SELECT 2').fetchone()[0])
        # pool_size 1 over both workers: b, on the other worker, waits for a's server.
        assert wait_for(lambda: pool_row(p)['cl_waiting'] == 1), pool_row(p)
        assert not q.done.is_set()
        p.settings['default_pool_size'] = 3
        p.write_config()
        if how == 'RELOAD':
            p.admin('RELOAD')
        else:
            p.reload()
        assert q.done.wait(10) and q.error is None and q.result == 2, q.error
        a.execute('COMMIT')
        assert wait_for(lambda: {r['name']: r for r in p.admin('SHOW DATABASES')}
                        ['app']['pool_size'] == 3)
        config = {r['key']: r['value'] for r in p.admin('SHOW CONFIG')}
        assert config['default_pool_size'] == '3'
        # Three transactions at once now fit, wherever their clients are.
        conns = connect_spread(p, 3, 2)
        try:
            for c in conns:
                c.execute('BEGIN')
                c.execute('SELECT 1')
            assert pool_row(p)['cl_waiting'] == 0
            for c in conns:
                c.execute('COMMIT')
        finally:
            close_all(conns)
    finally:
        close_all([a, b])


LOG_LINE = re.compile(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[\d+\] '
                      r'(FATAL|ERROR|WARNING|LOG|DEBUG|NOISE) \S')


def test_log_lines_whole_while_workers_log_at_once(pgtally):
    """Workers write their log lines without waiting for each other (src/log.c): every line of
    the logfile and of stderr is still whole, and none is lost, with reloads (which reopen
    the logfile) in between."""
    p = pgtally(ini={'workers': 2, 'max_client_conn': 100})
    per_thread, nthreads = 40, 6
    n = per_thread * nthreads
    sources = {'logfile': p.logfile, 'stderr': p.stderr_path}

    def counts():
        out = {}
        for name, path in sources.items():
            lines = util.read_text(path).splitlines()
            out[name] = (sum(' login: db=app user=app' in line for line in lines),
                         sum('closing because: client sent Terminate' in line for line in lines))
        return out

    before = counts()

    def churn():
        for _ in range(per_thread):
            with p.connect() as conn:
                conn.execute('SELECT 1')

    def reloads():
        for _ in range(5):
            p.admin('RELOAD')
            time.sleep(0.05)

    errors, hung = run_threads([churn] * nthreads + [reloads])
    assert errors == [] and hung == 0, (errors[:5], hung)
    want = {k: (v[0] + n, v[1] + n) for k, v in before.items()}
    wait_for(lambda: counts() == want)  # the last Terminates may still be on their way
    assert counts() == want, (counts(), want)
    for name, path in sources.items():
        torn = [line for line in util.read_text(path).splitlines() if not LOG_LINE.match(line)]
        assert torn == [], (name, torn[:5])


def test_sigint_idle_clients_on_both_workers_exits_clean(pgtally):
    p = pgtally(ini={'workers': 2})
    conns = connect_spread(p, 10, 2)
    try:
        for c in conns:
            c.execute('SELECT 1')
        p.signal(signal.SIGINT)
        # Idle clients hold no server: a safe shutdown does not wait for them.
        assert p.wait_exit(10) == 0, p.log_report()
    finally:
        close_all(conns)


def test_sigint_waits_for_a_transaction_on_the_other_worker(pgtally):
    p = pgtally(ini={'workers': 2})
    conns = connect_spread(p, 2, 2, tries=20)
    # The transaction is on the worker that does not own the signals.
    busy = [c for c in conns if worker_of(c) != 0][0]
    try:
        busy.execute('BEGIN')
        busy.execute('SELECT 1')
        p.signal(signal.SIGINT)
        assert p.wait_exit(0.5) is None, 'exited with a server still in a transaction'
        busy.execute('COMMIT')
        assert p.wait_exit(10) == 0, p.log_report()
    finally:
        close_all(conns)


def test_sigterm_waits_for_clients_on_every_worker(pgtally):
    p = pgtally(ini={'workers': 2})
    conns = connect_spread(p, 10, 2)
    try:
        for c in conns:
            c.execute('SELECT 1')
        on = {w: [c for c in conns if worker_of(c) == w] for w in (0, 1)}
        p.signal(signal.SIGTERM)
        for w in (0, 1):
            assert p.wait_exit(0.3) is None, 'exited with clients still on worker %d' % w
            close_all(on[w])
        assert p.wait_exit(10) == 0, p.log_report()
    finally:
        close_all(conns)


def test_sigquit_is_immediate_with_busy_clients_on_both_workers(pgtally, pg):
    p = pgtally(ini={'workers': 2, 'default_pool_size': 10})
    conns = connect_spread(p, 6, 2)
    try:
        bgs = [Background(lambda c=c: c.execute('SELECT pg_sleep(30)')) for c in conns]
        assert wait_for(lambda: pg.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' "
            "AND state = 'active'")[0][0] == 6, 15)
        p.signal(signal.SIGQUIT)
        rc = p.wait_exit(10)
        assert rc is not None, 'still running 10 s after SIGQUIT'
        assert rc == 0, p.log_report()
        for b in bgs:
            assert b.done.wait(10)
            assert isinstance(b.error, psycopg.OperationalError), b.error
    finally:
        close_all(conns)


def test_console_shutdown_with_clients_on_both_workers(pgtally):
    p = pgtally(ini={'workers': 2})
    conns = connect_spread(p, 10, 2)
    try:
        for c in conns:
            c.execute('SELECT 1')
        try:
            p.admin('SHUTDOWN')
        except psycopg.OperationalError:
            pass   # the process may be gone before the answer is read
        assert p.wait_exit(10) == 0, p.log_report()
    finally:
        close_all(conns)
