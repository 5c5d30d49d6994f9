"""Fault injection: backends killed, PostgreSQL restarted or stopped, clients vanishing, slow
readers, silent servers, connection storms, RELOAD/PAUSE and cancels under load, hostile bytes.

After each scenario the same invariants are checked (check_invariants): pgtally is alive, no
server is left inside a transaction, no client ever received a row meant for another client
(every query selects a value unique to the client that sent it), and SHOW POOLS agrees with
the clients still connected and with the backends PostgreSQL has for the pool."""

import asyncio
import os
import random
import signal
import socket
import struct
import threading
import time

import psycopg
import pytest

import rawpg
from harness.util import wait_for

TRUST = {'auth_type': 'trust'}
IN_TXN_STATES = ('idle in transaction', 'idle in transaction (aborted)')


# ---------------------------------------------------------------------- helpers

def app_backends(pg, states=None):
    """(pid, state) of PostgreSQL's client backends for the app/app pool."""
    rows = pg.sql("SELECT pid, coalesce(state, '') FROM pg_stat_activity WHERE datname = 'app' "
                  "AND usename = 'app' AND backend_type = 'client backend'")
    return [r for r in rows if states is None or r[1] in states]


def wait_no_backends(pg):
    """Backends of an earlier test's pooler may still be exiting."""
    assert wait_for(lambda: not app_backends(pg), timeout=15), app_backends(pg)


def pool_row(p):
    rows = [r for r in p.admin('SHOW POOLS') if r['database'] == 'app' and r['user'] == 'app']
    return rows[0] if rows else None


def raw_pool_row(p):
    """pool_row over rawpg (trust auth), for when this process holds more than 1024 fds and
    libpq's select() cannot wait on a new one."""
    c = raw_login(p, user='admin', db='pgtally')
    try:
        c.send(rawpg.query('SHOW POOLS'))
        msgs = c.read_until('Z')
    finally:
        c.close()
    names = []
    for t, body in msgs:
        if t == 'T':
            (n,) = struct.unpack('!H', body[:2])
            pos = 2
            for _ in range(n):
                end = body.index(b'\0', pos)
                names.append(body[pos:end].decode())
                pos = end + 1 + 18
        elif t == 'D':
            (n,) = struct.unpack('!H', body[:2])
            pos, values = 2, []
            for _ in range(n):
                (length,) = struct.unpack('!i', body[pos:pos + 4])
                pos += 4
                values.append(None if length < 0 else body[pos:pos + length].decode())
                pos += max(length, 0)
            row = dict(zip(names, values))
            if row['database'] == 'app' and row['user'] == 'app':
                return {k: int(v) if v and v.isdigit() else v for k, v in row.items()}
    return None


def sv_total(row):
    return sum(row[k] for k in ('sv_active', 'sv_idle', 'sv_used', 'sv_tested', 'sv_login'))


def rss_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def check_invariants(p, pg, clients=0):
    """The four promises that hold after every fault. clients: app connections still open."""
    assert p.is_running(), 'pgtally died\n' + p.log()[-3000:]

    # No server is left in a transaction (connections still open are idle between them).
    assert wait_for(lambda: not app_backends(pg, IN_TXN_STATES), timeout=10), \
        app_backends(pg, IN_TXN_STATES)

    # SHOW POOLS adds up: clients connected, and servers = PostgreSQL's backends for the pool.
    def pools_agree():
        row = pool_row(p)
        if row is None:
            return clients == 0 and not app_backends(pg)
        return (row['cl_active'] + row['cl_waiting'] == clients and
                sv_total(row) == len(app_backends(pg)))
    if not wait_for(pools_agree, timeout=15, step=0.2):
        row = pool_row(p)
        pytest.fail('SHOW POOLS does not add up: %r, %d clients open, backends %r'
                    % (row, clients, app_backends(pg)))

    # And it still works, for a newcomer too.
    with p.connect() as conn:
        assert conn.execute('SELECT 4242').fetchone() == (4242,)


class Load:
    """n client threads each running transactions that select values only they ask for.

    mode: 'simple' (one statement), 'txn' (BEGIN; two statements; COMMIT), 'sleep' (a query
    that takes `sleep` seconds). Errors are counted (faults cause some); a row with another
    client's value is a hard failure, kept in self.foreign. A client whose connection broke
    reconnects."""

    def __init__(self, p, n=8, mode='simple', sleep=0.02, connect_kwargs=None):
        self.p = p
        self.n = n
        self.mode = mode
        self.sleep = sleep
        self.connect_kwargs = connect_kwargs or {}
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.errors = []
        self.foreign = []
        self.conns = [None] * n
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(n)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        self.close()

    def _check(self, i, got, want):
        if got != want:
            with self.lock:
                self.foreign.append((i, want, got))

    def _one(self, i, conn, seq):
        tag = (i + 1) * 1000000 + seq
        if self.mode == 'simple':
            self._check(i, conn.execute('SELECT %s::int8', (tag,)).fetchone(), (tag,))
        elif self.mode == 'sleep':
            row = conn.execute('SELECT %s::int8, pg_sleep(%s)', (tag, self.sleep)).fetchone()
            self._check(i, row[0], tag)
        else:
            with conn.transaction():
                self._check(i, conn.execute('SELECT %s::int8', (tag,)).fetchone(), (tag,))
                row = conn.execute('SELECT %s::int8, pg_sleep(%s)', (-tag, self.sleep)).fetchone()
                self._check(i, row[0], -tag)

    def _run(self, i):
        seq = 0
        conn = None
        while not self.stop_ev.is_set():
            try:
                if conn is None or conn.closed:
                    conn = self.p.connect(connect_timeout=5, **self.connect_kwargs)
                    self.conns[i] = conn
                seq += 1
                self._one(i, conn, seq)
                with self.lock:
                    self.ok += 1
            except psycopg.Error as e:
                with self.lock:
                    self.errors.append('%s: %s' % (type(e).__name__, str(e).strip()[:200]))
                if conn is not None and (conn.closed or conn.broken):
                    conn.close()
                    conn = None
                elif conn is not None:
                    try:
                        conn.rollback()
                    except psycopg.Error:
                        conn.close()
                        conn = None
                time.sleep(0.02)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads), 'a load thread is stuck'

    def open_conns(self):
        return [c for c in self.conns if c is not None and not c.closed]

    def close(self):
        for c in self.conns:
            if c is not None:
                c.close()

    def count(self):
        with self.lock:
            return self.ok

    def wait_progress(self, extra=20, timeout=20):
        """Wait until `extra` more transactions have succeeded."""
        target = self.count() + extra
        return wait_for(lambda: self.count() >= target, timeout=timeout)


def finish(load, p, pg):
    """Stop the load; check invariants with its connections open, then after closing them."""
    load.stop()
    assert load.foreign == [], 'clients received rows meant for others: %r' % load.foreign[:5]
    check_invariants(p, pg, clients=len(load.open_conns()))
    load.close()
    check_invariants(p, pg, clients=0)


def raw_login(p, user='app', db='app'):
    c = rawpg.Conn(p.host, p.port)
    rawpg.login_trust(c, user, db)
    return c


def abort_socket(c):
    """Vanish without a Terminate: an RST, as when a client machine dies mid-stream."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    c.close()


# ---------------------------------------------------------------------- backends killed

def test_backend_killed_while_idle_in_pool_under_load(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini={'default_pool_size': 4})
    with Load(p, n=6, mode='simple') as load:
        assert load.wait_progress(50)
        for _ in range(5):
            idle = [pid for pid, _ in app_backends(pg, ('idle',))]
            for pid in idle[:2]:
                pg.sql('SELECT pg_terminate_backend(%s)', (pid,))
            assert load.wait_progress(30), load.errors[-5:]
        finish(load, p, pg)


def test_backend_killed_mid_query_under_load(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini={'default_pool_size': 4})
    with Load(p, n=6, mode='sleep', sleep=0.1) as load:
        assert load.wait_progress(10)
        killed = 0
        for _ in range(4):
            active = [pid for pid, _ in app_backends(pg, ('active',))]
            for pid in active[:1]:
                pg.sql('SELECT pg_terminate_backend(%s)', (pid,))
                killed += 1
            assert load.wait_progress(10), load.errors[-5:]
        assert killed > 0
        # Only the victims saw an error, and the error says what happened.
        assert 0 < len(load.errors) <= killed * 2, load.errors
        finish(load, p, pg)


def test_backend_killed_mid_transaction_under_load(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini={'default_pool_size': 4})
    with Load(p, n=6, mode='txn', sleep=0.05) as load:
        assert load.wait_progress(10)
        for _ in range(4):
            in_txn = [pid for pid, st in app_backends(pg)
                      if st in IN_TXN_STATES or st == 'active']
            if in_txn:
                pg.sql('SELECT pg_terminate_backend(%s)', (in_txn[0],))
            assert load.wait_progress(10), load.errors[-5:]
        finish(load, p, pg)


# ---------------------------------------------------------------------- PostgreSQL restarts

@pytest.mark.parametrize('mode', ['fast', 'immediate'])
def test_postgres_restart_under_load(pgtally, pg, mode):
    wait_no_backends(pg)
    p = pgtally(ini={'default_pool_size': 4, 'server_login_retry': 0.2,
                     'query_wait_timeout': 10})
    with Load(p, n=6, mode='txn', sleep=0.01) as load:
        assert load.wait_progress(20)
        pg.restart(mode)
        # Clients see errors for the connections that died, then carry on.
        assert load.wait_progress(50, timeout=30), load.errors[-5:]
        finish(load, p, pg)


def test_postgres_stopped_10s_then_started(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini={'default_pool_size': 4, 'server_login_retry': 0.5,
                     'query_wait_timeout': 3})
    with Load(p, n=4, mode='simple') as load:
        assert load.wait_progress(20)
        pg.stop('fast')
        try:
            time.sleep(3)
            # Down: clients fail promptly rather than hang (query_wait_timeout 3 s).
            stalled = load.count()
            time.sleep(2)
            assert load.count() == stalled
            assert load.errors
            assert all(t.is_alive() for t in load.threads)
            time.sleep(5)
        finally:
            pg.start()
        assert load.wait_progress(30, timeout=30), load.errors[-5:]
        finish(load, p, pg)


# ---------------------------------------------------------------------- clients vanishing

def test_client_vanishes_mid_transaction_under_load(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini=dict(TRUST, default_pool_size=3))
    with Load(p, n=4, mode='simple') as load:
        for _ in range(5):
            c = raw_login(p)
            c.send(rawpg.query('BEGIN; CREATE TEMP TABLE leak (x int); INSERT INTO leak '
                               'VALUES (1)'))
            c.read_until('Z')
            abort_socket(c)
        assert load.wait_progress(20), load.errors[-5:]
        assert load.errors == []
        finish(load, p, pg)
    with p.connect() as conn:
        assert conn.execute("SELECT to_regclass('pg_temp.leak')").fetchone() == (None,)


def test_client_vanishes_mid_copy(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini=dict(TRUST, default_pool_size=2))
    pg.sql('CREATE TABLE IF NOT EXISTS fault_copy (x int)', dbname='app')
    pg.sql('GRANT ALL ON fault_copy TO app', dbname='app')
    with Load(p, n=3, mode='simple') as load:
        for _ in range(3):
            c = raw_login(p)
            c.send(rawpg.query('COPY fault_copy FROM STDIN'))
            assert c.read_message()[0] == 'G'
            c.send(rawpg.message('d', b'1\n2\n3\n') * 100)
            time.sleep(0.05)
            abort_socket(c)
        assert load.wait_progress(20), load.errors[-5:]
        assert load.errors == []
        finish(load, p, pg)
    # The half-done COPYs were never committed.
    assert pg.sql('SELECT count(*) FROM fault_copy', dbname='app') == [(0,)]


def test_client_vanishes_mid_pipeline(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini=dict(TRUST, default_pool_size=2))
    parse = rawpg.message('P', b'\0SELECT pg_sleep(0.001)\0\0\0')
    bind = rawpg.message('B', b'\0\0\0\0\0\0\0\0')
    execute = rawpg.message('E', b'\0\0\0\0\0')
    with Load(p, n=3, mode='simple') as load:
        for _ in range(3):
            c = raw_login(p)
            c.send(rawpg.query('BEGIN'))
            c.read_until('Z')
            # No Sync: the server holds an open extended-protocol batch when we leave.
            c.send(parse + (bind + execute) * 500)
            time.sleep(0.05)
            abort_socket(c)
        assert load.wait_progress(20), load.errors[-5:]
        assert load.errors == []
        finish(load, p, pg)


def test_client_vanishes_mid_authentication(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini={'default_pool_size': 2})  # scram-sha-256
    for i in range(30):
        c = rawpg.Conn(p.host, p.port)
        c.send(rawpg.startup_packet({'user': 'app', 'database': 'app'}))
        t, body = c.read_message()
        assert t == 'R' and struct.unpack('!I', body[:4])[0] == 10  # SASL
        if i % 3 == 1:
            first = b'n,,n=,r=abcdefghijklmnopqrstuvwx'
            c.send(rawpg.message('p', b'SCRAM-SHA-256\0' + struct.pack('!I', len(first)) +
                                 first))
            assert c.read_message()[0] == 'R'
        if i % 3 == 2:
            c.send(b'p\0\0')  # half a message
        abort_socket(c)
    # None of them left anything behind.
    def no_login_clients():
        return not [r for r in p.admin('SHOW CLIENTS') if r['user'] == 'app']
    assert wait_for(no_login_clients, timeout=5), p.admin('SHOW CLIENTS')
    check_invariants(p, pg, clients=0)


# ---------------------------------------------------------------------- slow and silent peers

def test_client_that_stops_reading_a_large_result(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini=dict(TRUST, default_pool_size=3))
    with p.connect() as warm:
        warm.execute('SELECT 1')
    rss_before = rss_kb(p.pid)
    stuck = raw_login(p)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # About 200 MB of rows that we never read.
    stuck.send(rawpg.query("SELECT repeat('x', 1000) FROM generate_series(1, 200000)"))
    time.sleep(1.5)
    with Load(p, n=4, mode='simple') as load:
        start = time.monotonic()
        assert load.wait_progress(100, timeout=10), load.errors[-5:]
        assert time.monotonic() - start < 10  # the others do not stall
        grown = rss_kb(p.pid) - rss_before
        assert grown < 20 * 1024, 'pgtally grew by %d kB behind a slow reader' % grown
        abort_socket(stuck)
        finish(load, p, pg)
    assert rss_kb(p.pid) - rss_before < 20 * 1024


def test_server_that_stops_answering_hits_query_timeout(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini={'default_pool_size': 3, 'query_timeout': 1})
    stopped = []
    try:
        with Load(p, n=3, mode='simple') as load, p.connect() as victim:
            # Inside a transaction the victim keeps its server: nobody else gets it.
            victim.execute('BEGIN')
            pid = victim.execute('SELECT pg_backend_pid()').fetchone()[0]
            os.kill(pid, signal.SIGSTOP)  # the backend freezes: no answer, no EOF
            stopped.append(pid)
            start = time.monotonic()
            with pytest.raises(psycopg.OperationalError) as ei:
                victim.execute('SELECT 1')
            assert 'query_timeout' in str(ei.value)
            assert time.monotonic() - start < 5
            assert load.wait_progress(20), load.errors[-5:]
            assert load.errors == []
            os.kill(pid, signal.SIGCONT)
            stopped.clear()
            finish(load, p, pg)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


# ---------------------------------------------------------------------- connection storm

async def _storm_client(host, port, i, results, hold):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(rawpg.startup_packet({'user': 'app', 'database': 'app'}))
        await _read_until(reader, b'Z')
        writer.write(rawpg.query('SELECT %d' % (i * 7 + 1)))
        msgs = await _read_until(reader, b'Z')
        rows = [body for t, body in msgs if t == b'D']
        results[i] = rows[0][6:].decode() if rows else None
        await hold.wait()
        writer.write(rawpg.message('X'))
        await writer.drain()
    finally:
        writer.close()


async def _read_until(reader, type_):
    out = []
    while True:
        hdr = await reader.readexactly(5)
        (length,) = struct.unpack('!I', hdr[1:])
        body = await reader.readexactly(length - 4)
        out.append((hdr[:1], body))
        if hdr[:1] == type_:
            return out
        if hdr[:1] == b'E':
            raise RuntimeError(rawpg.error_fields(body).get('M'))


def test_2000_clients_connecting_at_once(pgtally, pg):
    wait_no_backends(pg)
    n = 2000
    p = pgtally(ini=dict(TRUST, default_pool_size=10, max_client_conn=n + 50))
    results = {}
    counts = {}

    async def main():
        hold = asyncio.Event()
        tasks = [asyncio.ensure_future(_storm_client(p.host, p.port, i, results, hold))
                 for i in range(n)]
        deadline = time.monotonic() + 60
        while len(results) < n and time.monotonic() < deadline:
            if any(t.done() and t.exception() for t in tasks):
                break
            await asyncio.sleep(0.1)
        # All connected at the same time: SHOW POOLS must count every one of them.
        row = await asyncio.get_running_loop().run_in_executor(None, raw_pool_row, p)
        counts['row'] = row
        hold.set()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        return [d for d in done if isinstance(d, BaseException)]

    errors = asyncio.run(asyncio.wait_for(main(), 120))
    assert errors == [], errors[:5]
    assert len(results) == n
    wrong = [(i, v) for i, v in results.items() if v != str(i * 7 + 1)]
    assert wrong == []
    row = counts['row']
    assert row['cl_active'] + row['cl_waiting'] == n, row
    assert sv_total(row) <= 10
    check_invariants(p, pg, clients=0)


# ---------------------------------------------------------------------- console under load

def test_reload_under_load(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini={'default_pool_size': 2})
    with Load(p, n=6, mode='txn', sleep=0.005) as load:
        assert load.wait_progress(20)
        for size in (5, 2, 4, 3):
            p.settings['default_pool_size'] = size
            p.write_config()
            p.admin('RELOAD')
            assert load.wait_progress(15), load.errors[-5:]
            assert len(app_backends(pg)) <= max(size, 5)
        p.reload()  # SIGHUP too
        assert load.wait_progress(15), load.errors[-5:]
        assert load.errors == []
        finish(load, p, pg)


def test_pause_resume_under_load(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini={'default_pool_size': 3})
    with Load(p, n=6, mode='txn', sleep=0.01) as load:
        assert load.wait_progress(20)
        for _ in range(3):
            p.admin('PAUSE')  # returns once every server is released
            assert not app_backends(pg, IN_TXN_STATES + ('active',))
            paused_at = load.count()
            time.sleep(0.5)
            assert load.count() == paused_at  # nothing runs while paused
            p.admin('RESUME')
            assert load.wait_progress(20), load.errors[-5:]
        assert load.errors == []
        finish(load, p, pg)


# ---------------------------------------------------------------------- cancel storm

def test_cancel_storm(pgtally, pg):
    wait_no_backends(pg)
    p = pgtally(ini={'default_pool_size': 3})
    with Load(p, n=6, mode='sleep', sleep=0.05) as load:
        assert load.wait_progress(10)
        rnd = random.Random(7)
        for _ in range(300):
            conn = rnd.choice(load.open_conns() or [None])
            if conn is not None:
                try:
                    conn.cancel()
                except psycopg.Error:
                    pass
            if rnd.random() < 0.3:
                # Cancel requests with keys nobody has.
                c = rawpg.Conn(p.host, p.port)
                c.send(struct.pack('!IIII', 16, 80877102, rnd.getrandbits(31),
                                   rnd.getrandbits(32)))
                c.close()
            time.sleep(0.002)
        assert load.wait_progress(20), load.errors[-5:]
        # Cancels only ever cancel: no broken connections, no other kind of error.
        other = [e for e in load.errors if not e.startswith('QueryCanceled')]
        assert other == [], other[:5]
        finish(load, p, pg)


# ---------------------------------------------------------------------- hostile input

@pytest.mark.parametrize('length', [0x80000000, 0xfffffffc, 0x40000000])
def test_negative_and_1gb_lengths_drop_only_that_client(pgtally, length):
    # 0x80000000 and 0xfffffffc are negative as a signed int; 0x40000000 is a Query of 1 GB
    # with the default max_packet_size.
    p = pgtally(ini=TRUST)
    with p.connect() as bystander:
        bystander.execute('BEGIN')
        bystander.execute('SELECT 1')
        c = raw_login(p)
        c.send(b'Q' + struct.pack('!I', length) + b'SELECT 1')
        t, body = c.read_message()
        f = rawpg.error_fields(body)
        assert t == 'E' and f['C'] == '08P01' and 'invalid message length' in f['M']
        assert c.closed()
        assert bystander.execute('SELECT 2').fetchone() == (2,)
        bystander.execute('COMMIT')


def test_invalid_utf8_in_query_is_postgres_error(pgtally):
    p = pgtally(ini=TRUST)
    c = raw_login(p)
    c.send(rawpg.message('Q', b"SELECT '\xff\xfe\xc3(' /* \x80 */\0"))
    msgs = c.read_until('Z')
    err = [rawpg.error_fields(b) for t, b in msgs if t == 'E']
    assert err and err[0]['C'] == '22021'  # PostgreSQL's own "invalid byte sequence"
    # The client is not dropped for it.
    c.send(rawpg.query('SELECT 77'))
    msgs = c.read_until('Z')
    assert ('D', b'\0\1\0\0\0\00277') in msgs


def test_invalid_utf8_in_startup_parameter(pgtally):
    p = pgtally(ini=TRUST)
    with p.connect() as bystander:
        c = rawpg.Conn(p.host, p.port)
        c.send(_startup_raw([(b'user', b'app'), (b'database', b'app'),
                             (b'application_name', b'\xff\xfebad')]))
        msgs = []
        try:
            while not msgs or msgs[-1][0] != 'Z':
                msgs.append(c.read_message())
            c.send(rawpg.query('SELECT 5'))
            while msgs[-1][0] != 'Z' or len([m for m in msgs if m[0] == 'Z']) < 2:
                msgs.append(c.read_message())
        except (EOFError, ConnectionResetError):
            pass
        # Either PostgreSQL's error reaches the client or the query runs; never a hang, and
        # nobody else is affected.
        types = [t for t, _ in msgs]
        assert 'E' in types or ('D', b'\0\1\0\0\0\0015') in msgs, msgs
        c.close()
        assert bystander.execute('SELECT 3').fetchone() == (3,)
        c2 = rawpg.Conn(p.host, p.port)
        c2.send(_startup_raw([(b'user', b'\xff\xfe'), (b'database', b'app')]))
        t, body = c2.read_message()
        assert t == 'E'
        assert bystander.execute('SELECT 4').fetchone() == (4,)


def _startup_raw(pairs):
    body = struct.pack('!I', 196608)
    for k, v in pairs:
        body += k + b'\0' + v + b'\0'
    body += b'\0'
    return struct.pack('!I', len(body) + 4) + body


# ---------------------------------------------------------------------- regressions

def test_close_after_forwarded_messages_in_one_read(pgtally):
    """Regression (fuzz_client_stream): a Close answered by pgtally itself dropped the
    Execute and Sync that arrived before it in the same read."""
    p = pgtally(ini=dict(TRUST, max_prepared_statements=10))
    c = raw_login(p)
    parse = rawpg.message('P', b's1\0SELECT 31\0\0\0')
    bind = rawpg.message('B', b'\0s1\0\0\0\0\0\0\0')
    execute = rawpg.message('E', b'\0\0\0\0\0')
    sync = rawpg.message('S')
    c.send(parse + bind + execute + sync)
    c.read_until('Z')
    c.send(bind + execute + sync + rawpg.message('C', b'Ss1\0') + sync)
    msgs = c.read_until('Z') + c.read_until('Z')
    types = ''.join(t for t, _ in msgs)
    assert types == '2DCZ3Z', types


def test_large_message_skipped_after_pgtally_error(pgtally):
    """Regression (fuzz_client_stream): a message larger than the read buffer, skipped up to
    Sync after an error pgtally made, ran the read position past the data."""
    p = pgtally(ini=dict(TRUST, max_prepared_statements=10))
    c = raw_login(p)
    value = b'v' * (2 * 1024 * 1024)
    bind = rawpg.message('B', b'\0nope\0\0\0\0\1' + struct.pack('!I', len(value)) + value +
                         b'\0\0')
    c.send(rawpg.message('D', b'Snope\0') + bind + rawpg.message('S'))
    msgs = c.read_until('Z')
    err = [rawpg.error_fields(b) for t, b in msgs if t == 'E']
    assert err and err[0]['C'] == '26000'
    c.send(rawpg.query('SELECT 9'))
    assert ('D', b'\0\1\0\0\0\0019') in c.read_until('Z')


def test_cancel_wait_timeout_bounds_a_forwarded_cancel(pgtally):
    """A cancel request whose PostgreSQL never closes the connection is dropped after
    cancel_wait_timeout (it was 10 s whatever the option said); a log line says so."""
    held = []

    def on_cancel(conn, pid, key):
        start = time.monotonic()
        conn.settimeout(8)
        try:
            eof = conn.recv(1) == b''  # pgtally closes its end: EOF
        except OSError:
            eof = False
        held.append((eof, time.monotonic() - start))

    fake = FakePostgres(_query_never_ends, on_cancel)
    try:
        p, client, cancel = _cancel_a_query_on(pgtally, fake, dict(TRUST, cancel_wait_timeout=0.5))
        assert wait_for(lambda: held, 10)
        eof, seconds = held[0]
        assert eof and seconds < 5, held
        assert p.wait_for_log(r'did not close the connection within cancel_wait_timeout')
        assert fake.errors == []
        client.close()
        cancel.close()
    finally:
        fake.close()


class FakePostgres:
    """A listening socket that plays PostgreSQL with a script: script(conn) gets each accepted
    socket after its startup packet was read; on_cancel(conn, pid, key) gets a CancelRequest's
    connection."""

    def __init__(self, script, on_cancel=None):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.on_cancel = on_cancel
        self.errors = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(20)
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        with conn:
            try:
                while True:
                    (n,) = struct.unpack('!I', _recv_exact(conn, 4))
                    body = _recv_exact(conn, n - 4)
                    (code,) = struct.unpack('!I', body[:4])
                    if code != 80877103:
                        break
                    conn.sendall(b'N')  # SSLRequest: no TLS here
                if code == 80877102:
                    if self.on_cancel:
                        self.on_cancel(conn, *struct.unpack('!II', body[4:12]))
                    return
                self.script(conn)
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(e)

    def close(self):
        self.sock.close()


def _recv_exact(conn, n):
    buf = b''
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _login_ok():
    return (rawpg.message('R', struct.pack('!I', 0)) +
            rawpg.message('S', b'client_encoding\0UTF8\0') +
            rawpg.message('K', struct.pack('!II', 1, 2)) + rawpg.message('Z', b'I'))


def _query_never_ends(conn):
    """A FakePostgres script: log in, read one query, never answer it."""
    conn.sendall(_login_ok())
    hdr = _recv_exact(conn, 5)
    _recv_exact(conn, struct.unpack('!I', hdr[1:])[0] - 4)
    time.sleep(8)


def _cancel_a_query_on(pgtally, fake, ini):
    """A pgtally in front of fake, a client whose query runs there, and a cancel request for
    it sent to pgtally: (the pgtally, the client, the cancel connection). The caller keeps the
    two connections open: had they closed on return, the client would be gone before a cancel
    that landed on another worker (PGTALLY_WORKERS=2) reached it, and the cancel dropped."""
    p = pgtally(ini=ini, databases={'fake': {'host': '127.0.0.1', 'port': fake.port}})
    c = rawpg.Conn(p.host, p.port)
    msgs = rawpg.login_trust(c, 'app', 'fake')
    pid, key = struct.unpack('!II', [b for t, b in msgs if t == 'K'][0])
    c.send(rawpg.query('SELECT pg_sleep(100)'))
    time.sleep(0.3)
    cancel = rawpg.Conn(p.host, p.port)
    cancel.send(struct.pack('!IIII', 16, 80877102, pid, key))
    return p, c, cancel


def test_client_idle_timeout_counts_from_the_welcome(pgtally):
    """Regression (seen in CI under ASan): a login that waited longer than client_idle_timeout
    for the pool's first server counted that wait as idle time, so the client was closed
    right after ReadyForQuery."""
    def slow_login_then_answer(conn):
        time.sleep(1.6)
        conn.sendall(_login_ok())
        hdr = _recv_exact(conn, 5)
        _recv_exact(conn, struct.unpack('!I', hdr[1:])[0] - 4)
        conn.sendall(rawpg.message('C', b'SELECT 0\0') + rawpg.message('Z', b'I'))
        time.sleep(3)

    fake = FakePostgres(slow_login_then_answer)
    try:
        p = pgtally(ini=dict(TRUST, client_idle_timeout=1),
                    databases={'fake': {'host': '127.0.0.1', 'port': fake.port}})
        c = rawpg.Conn(p.host, p.port)
        started = time.time()
        rawpg.login_trust(c, 'app', 'fake')
        assert time.time() - started > 1.5  # the welcome waited for the slow server
        time.sleep(0.6)  # idle, but less than client_idle_timeout since ReadyForQuery
        c.send(rawpg.query('SELECT 0'))
        assert [t for t, _ in c.read_until('Z')] == ['C', 'Z']
        assert fake.errors == []
    finally:
        fake.close()


def test_row_description_split_across_reads(pgtally):
    """Regression (fuzz_server_stream): a RowDescription arriving in two reads was taken as
    whole, running the read position past the data."""
    rowdesc = rawpg.message('T', struct.pack('!H', 1) + b'x' * 3000 + b'\0' +
                            struct.pack('!IhIhih', 0, 0, 23, 4, -1, 0))

    def script(conn):
        conn.sendall(_login_ok())
        for _ in range(5):  # Parse, Bind, Describe, Execute, Sync
            hdr = _recv_exact(conn, 5)
            _recv_exact(conn, struct.unpack('!I', hdr[1:])[0] - 4)
        conn.sendall(rawpg.message('1') + rawpg.message('2') + rowdesc[:100])
        time.sleep(0.3)
        conn.sendall(rowdesc[100:] + rawpg.message('D', b'\0\1\0\0\0\0017') +
                     rawpg.message('C', b'SELECT 1\0') + rawpg.message('Z', b'I'))
        time.sleep(1)

    fake = FakePostgres(script)
    try:
        p = pgtally(ini=TRUST, databases={'fake': {'host': '127.0.0.1', 'port': fake.port}})
        c = raw_login(p, db='fake')
        # Extended protocol: the RowDescription answers the Describe pgtally keeps books on.
        c.send(rawpg.message('P', b'\0SELECT 7\0\0\0') +
               rawpg.message('B', b'\0\0\0\0\0\0\0\0') + rawpg.message('D', b'P\0') +
               rawpg.message('E', b'\0\0\0\0\0') + rawpg.message('S'))
        msgs = c.read_until('Z')
        assert [t for t, _ in msgs] == ['1', '2', 'T', 'D', 'C', 'Z']
        assert msgs[2][1] == rowdesc[5:]
        assert p.is_running()
    finally:
        fake.close()


def test_server_announcing_4gb_message_at_login(pgtally):
    """Regression (fuzz_server_stream): a login-phase message length was allocated as given."""
    def script(conn):
        # Not a type held whole anyway (like 'R'): at login every message is.
        conn.sendall(b'\xae' + struct.pack('!I', 0xffff0000) + b'\0\0\0\0')
        time.sleep(1)

    fake = FakePostgres(script)
    try:
        p = pgtally(ini=TRUST, databases={'fake': {'host': '127.0.0.1', 'port': fake.port}})
        rss_before = rss_kb(p.pid)
        c = rawpg.Conn(p.host, p.port)
        c.send(rawpg.startup_packet({'user': 'app', 'database': 'fake'}))
        msgs = []
        try:
            msgs = c.read_until('E')
        except EOFError:
            pass
        assert msgs and msgs[-1][0] == 'E'
        assert 'bad message length' in rawpg.error_fields(msgs[-1][1])['M']
        assert p.is_running()
        assert rss_kb(p.pid) - rss_before < 50 * 1024
    finally:
        fake.close()


@pytest.mark.parametrize('workers', [1, 2])
def test_server_login_without_parameter_status(pgtally, workers):
    """Regression (fuzz_server_stream, UBSan): a login that reported no ParameterStatus left
    the pool's welcome empty, and reading it did arithmetic on a NULL pointer. With two
    workers (check-asan, UBSan) the welcome shared with the other worker was copied from that
    NULL pointer too."""
    def script(conn):
        conn.sendall(rawpg.message('R', struct.pack('!I', 0)) +
                     rawpg.message('K', struct.pack('!II', 1, 2)) + rawpg.message('Z', b'I'))
        hdr = _recv_exact(conn, 5)
        _recv_exact(conn, struct.unpack('!I', hdr[1:])[0] - 4)
        conn.sendall(rawpg.message('I') + rawpg.message('Z', b'I'))
        time.sleep(1)

    fake = FakePostgres(script)
    try:
        p = pgtally(ini=dict(TRUST, workers=workers),
                    databases={'fake': {'host': '127.0.0.1', 'port': fake.port}})
        c = raw_login(p, db='fake')
        c.send(rawpg.query(''))
        assert [t for t, _ in c.read_until('Z')] == ['I', 'Z']
        assert p.is_running()
    finally:
        fake.close()


def test_exit_with_a_cancel_still_being_forwarded(pgtally):
    """Regression (check-asan, LeakSanitizer): a cancel request still being forwarded to
    PostgreSQL when pgtally exited was never freed."""
    got_cancel = threading.Event()

    def on_cancel(conn, pid, key):
        assert (pid, key) == (1, 2)  # the fake backend's key, as _login_ok() gave it
        got_cancel.set()
        time.sleep(5)  # and the cancel connection is never closed

    fake = FakePostgres(_query_never_ends, on_cancel)
    try:
        p, client, cancel = _cancel_a_query_on(pgtally, fake, TRUST)
        assert got_cancel.wait(5)
        p.signal(signal.SIGQUIT)  # immediate shutdown, the cancel still in flight
        assert p.wait_exit(5) == 0
        assert fake.errors == []
        client.close()
        cancel.close()
    finally:
        fake.close()
