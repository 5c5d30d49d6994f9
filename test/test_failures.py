"""Bad input and failures: each gets a clear error, only the culprit is dropped, nothing dirty
is handed on, and pgtally recovers when PostgreSQL comes back."""

import os
import re
import signal
import struct
import subprocess
import threading
import time

import psycopg
import pytest

import harness
import rawpg
from harness.util import wait_for


def app_backends(pg, state=None):
    q = ("SELECT pid FROM pg_stat_activity WHERE datname = 'app' AND usename = 'app' "
         "AND backend_type = 'client backend'")
    if state:
        q += " AND state = '%s'" % state
    return [r[0] for r in pg.sql(q)]


def test_message_longer_than_max_packet_size(pgtally):
    p = pgtally(ini={'max_packet_size': 10000, 'auth_type': 'trust'})
    good = p.connect(password='')
    try:
        c = rawpg.Conn(p.host, p.port)
        rawpg.login_trust(c, 'app', 'app')
        c.send(b'Q' + struct.pack('!I', 1 << 30))
        t, body = c.read_message()
        assert t == 'E'
        f = rawpg.error_fields(body)
        assert f['C'] == '08P01' and 'invalid message length' in f['M']
        assert c.closed()
        assert good.execute('SELECT 1').fetchone() == (1,)
    finally:
        good.close()


@pytest.mark.parametrize('length', [0, 3, 0x7fffffff, 0xffffffff])
def test_bad_length_fields(pgtally, length):
    p = pgtally(ini={'auth_type': 'trust'})
    c = rawpg.Conn(p.host, p.port)
    rawpg.login_trust(c, 'app', 'app')
    c.send(b'Q' + struct.pack('!I', length))
    t, body = c.read_message()
    assert t == 'E' and rawpg.error_fields(body)['C'] == '08P01'
    assert c.closed()


def test_unknown_message_type(pgtally):
    p = pgtally(ini={'auth_type': 'trust'})
    c = rawpg.Conn(p.host, p.port)
    rawpg.login_trust(c, 'app', 'app')
    c.send(rawpg.message('y', b'xx'))
    t, body = c.read_message()
    assert t == 'E' and 'unsupported message type' in rawpg.error_fields(body)['M']
    assert c.closed()


def test_disable_pqexec_refuses_simple_query(pgtally):
    """As PgBouncer: the extended protocol works, a simple Query ends the connection with
    FATAL 08P01 "PQexec disallowed", and the admin console (simple protocol) is not affected."""
    p = pgtally(ini={'auth_type': 'trust', 'disable_pqexec': 1})
    with p.connect(password='') as conn:  # psycopg 3 with parameters: Parse/Bind/Execute
        assert conn.execute('SELECT %s::int + 1', (41,)).fetchone() == (42,)
        with pytest.raises(psycopg.OperationalError, match='PQexec disallowed'):
            psycopg.ClientCursor(conn).execute('SELECT 1')  # a simple Query
    c = rawpg.Conn(p.host, p.port)
    rawpg.login_trust(c, 'app', 'app')
    c.send(rawpg.message('P', b'\0SELECT 7\0\0\0') + rawpg.message('B', b'\0\0\0\0\0\0\0\0') +
           rawpg.message('E', b'\0\0\0\0\0') + rawpg.message('S'))
    msgs = c.read_until('Z')
    assert ('D', b'\0\x01\0\0\0\x017') in msgs and msgs[-1] == ('Z', b'I')
    c.send(rawpg.query('SELECT 1; DROP TABLE x'))
    t, body = c.read_message()
    f = rawpg.error_fields(body)
    assert t == 'E' and f['S'] == 'FATAL' and f['C'] == '08P01'
    assert 'PQexec disallowed' in f['M']
    assert c.closed()
    assert p.wait_for_log(r'pooler error: PQexec disallowed')
    assert p.admin('SHOW VERSION')


def test_message_one_byte_at_a_time(pgtally):
    p = pgtally(ini={'auth_type': 'trust'})
    c = rawpg.Conn(p.host, p.port)
    pkt = rawpg.startup_packet({'user': 'app', 'database': 'app'})
    for b in pkt:
        c.send(bytes([b]))
    c.read_until('Z')
    for b in rawpg.query('SELECT 12345'):
        c.send(bytes([b]))
        time.sleep(0.001)
    msgs = c.read_until('Z')
    assert msgs[1][0] == 'D' and b'12345' in msgs[1][1]


def test_pipelined_messages_without_sync(pgtally):
    p = pgtally(ini={'auth_type': 'trust'})
    c = rawpg.Conn(p.host, p.port, timeout=30)
    rawpg.login_trust(c, 'app', 'app')
    parse = rawpg.message('P', b'\0SELECT 1\0\0\0')
    bind = rawpg.message('B', b'\0\0\0\0\0\0\0\0')
    execute = rawpg.message('E', b'\0\0\0\0\0')
    c.send(parse + (bind + execute) * 10000 + rawpg.message('S'))
    msgs = c.read_until('Z')
    assert sum(1 for m in msgs if m[0] == 'C') == 10000
    assert msgs[-1] == ('Z', b'I')


def test_startup_packet_with_many_parameters(pgtally):
    p = pgtally(ini={'auth_type': 'trust'})
    c = rawpg.Conn(p.host, p.port)
    params = {'user': 'app', 'database': 'app'}
    params.update({'p%d' % i: 'v' for i in range(10000)})
    try:
        c.send(rawpg.startup_packet(params))
        t, body = c.read_message()
        assert t == 'E' and rawpg.error_fields(body)['C'] == '08P01'
    except (ConnectionResetError, BrokenPipeError):
        pass  # refused before we finished sending: also fine, nobody else is affected
    with p.connect(password='') as conn:
        assert conn.execute('SELECT 1').fetchone() == (1,)


def test_backend_killed_while_idle_in_pool(pgtally, pg):
    p = pgtally(ini={'default_pool_size': 1})
    with p.connect() as conn:
        pid = conn.execute('SELECT pg_backend_pid()').fetchone()[0]
        pg.sql('SELECT pg_terminate_backend(%s)', (pid,))
        assert wait_for(lambda: pid not in app_backends(pg))
        time.sleep(0.2)
        # The dead server was dropped from the pool; the next query gets a new one.
        pid2 = conn.execute('SELECT pg_backend_pid()').fetchone()[0]
        assert pid2 != pid


def test_backend_killed_mid_transaction(pgtally, pg):
    p = pgtally(ini={'default_pool_size': 2})
    with p.connect() as victim, p.connect() as bystander:
        victim.execute('BEGIN')
        pid = victim.execute('SELECT pg_backend_pid()').fetchone()[0]
        pg.sql('SELECT pg_terminate_backend(%s)', (pid,))
        with pytest.raises(psycopg.OperationalError):
            victim.execute('SELECT 1')
        assert bystander.execute('SELECT 2').fetchone() == (2,)


def test_backend_killed_mid_query(pgtally, pg):
    p = pgtally()
    with p.connect() as conn:
        pid = conn.execute('SELECT pg_backend_pid()').fetchone()[0]
        t = threading.Timer(0.5, lambda: pg.sql('SELECT pg_terminate_backend(%s)', (pid,)))
        t.start()
        with pytest.raises(psycopg.OperationalError) as ei:
            conn.execute('SELECT pg_sleep(10)')
        t.join()
        assert 'terminat' in str(ei.value) or 'server connection lost' in str(ei.value)
    with p.connect() as conn:
        assert conn.execute('SELECT 1').fetchone() == (1,)


def test_client_vanishes_mid_transaction(pgtally, pg):
    p = pgtally(ini={'default_pool_size': 1})
    conn = p.connect()
    conn.execute('BEGIN')
    conn.execute('CREATE TEMP TABLE leak (x int)')
    # Kill the socket without a Terminate.
    os.close(conn.pgconn.socket)
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - the socket is already gone
        pass
    # Nobody inherits that transaction: the only server is rolled back or replaced.
    with p.connect() as other:
        assert other.execute('SELECT pg_current_xact_id_if_assigned()').fetchone() == (None,)
        assert other.execute("SELECT to_regclass('pg_temp.leak')").fetchone() == (None,)
    assert wait_for(lambda: not app_backends(pg, 'idle in transaction'))


def test_postgres_restart_with_clients_connected(pgtally, pg):
    p = pgtally(ini={'server_login_retry': 0.2, 'default_pool_size': 2})
    conns = [p.connect() for _ in range(4)]
    try:
        for c in conns:
            c.execute('SELECT 1')
        pg.restart('fast')
        # Each client may see one error for the connection that died; then it works again.
        for c in conns:
            ok = False
            for _ in range(50):
                try:
                    ok = c.execute('SELECT 1').fetchone() == (1,)
                    break
                except psycopg.OperationalError:
                    if c.closed:
                        break
                    time.sleep(0.1)
            if not ok and c.closed:
                continue
            assert ok
        with p.connect() as fresh:
            assert fresh.execute('SELECT 2').fetchone() == (2,)
    finally:
        for c in conns:
            c.close()


def test_postgres_down_then_back(pgtally, pg):
    p = pgtally(ini={'server_login_retry': 0.2, 'query_wait_timeout': 2})
    with p.connect() as conn:
        conn.execute('SELECT 1')
    pg.stop('fast')
    try:
        start = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as ei:
            with p.connect() as conn:
                conn.execute('SELECT 1')
        assert time.monotonic() - start < 10
        assert 'server' in str(ei.value) or 'query_wait_timeout' in str(ei.value)
        # The log says where it could not connect.
        assert p.wait_for_log(r'(send to server|cannot start TLS with) %s:%d' %
                              (re.escape(pg.host), pg.port))
    finally:
        pg.start()
    assert wait_for(lambda: _query_ok(p), timeout=15, step=0.3)


def _query_ok(p):
    try:
        with p.connect() as conn:
            return conn.execute('SELECT 1').fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def test_sigint_waits_for_servers_then_exits(pgtally):
    p = pgtally()
    with p.connect() as conn:
        conn.execute('BEGIN')
        conn.execute('SELECT 1')
        p.signal(signal.SIGINT)
        time.sleep(0.5)
        assert p.is_running()  # a server is still in a transaction
        conn.execute('COMMIT')
    assert p.wait_exit(timeout=5) == 0


def test_sigterm_twice_is_immediate(pgtally):
    p = pgtally()
    conn = p.connect()
    try:
        conn.execute('SELECT 1')
        p.signal(signal.SIGTERM)
        time.sleep(0.5)
        assert p.is_running()  # SIGTERM waits for clients
        p.signal(signal.SIGTERM)
        assert p.wait_exit(timeout=5) == 0
    finally:
        conn.close()


def test_sigusr1_pause_sigusr2_resume(pgtally):
    p = pgtally()
    with p.connect() as conn:
        conn.execute('SELECT 1')
        p.signal(signal.SIGUSR1)
        time.sleep(0.3)
        result = []
        t = threading.Thread(target=lambda: result.append(conn.execute('SELECT 5').fetchone()))
        t.start()
        time.sleep(0.5)
        assert result == []  # held while paused
        p.signal(signal.SIGUSR2)
        t.join(5)
        assert result == [(5,)]


def test_sighup_reload_applies_pool_size(pgtally, pg):
    p = pgtally(ini={'default_pool_size': 1})
    with p.connect() as a, p.connect() as b:
        a.execute('BEGIN')
        a.execute('SELECT 1')
        p.settings['default_pool_size'] = 2
        p.write_config()
        p.reload()
        assert p.wait_for_log('configuration reloaded')
        # With room for a second server, b no longer waits for a.
        assert b.execute('SELECT 3').fetchone() == (3,)
        a.execute('COMMIT')


def test_check_flag_reports_problems(tmp_path):
    ini = tmp_path / 'bad.ini'
    ini.write_text('[pgbouncer]\nlisten_port = notanumber\nno_such_option = 1\n'
                   '[databases]\napp = host=127.0.0.1 port=5432\n')
    r = subprocess.run(['./pgtally', '--check', str(ini)], capture_output=True, text=True)
    assert r.returncode != 0
    assert '%s:2:' % ini in r.stdout + r.stderr
    assert '%s:3:' % ini in r.stdout + r.stderr
    good = tmp_path / 'good.ini'
    good.write_text('[pgbouncer]\nlisten_port = 6432\n[databases]\napp = host=127.0.0.1\n')
    r = subprocess.run(['./pgtally', '--check', str(good)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_host_list_check_refuses_an_empty_entry(tmp_path):
    ini = tmp_path / 'hosts.ini'
    ini.write_text('[pgbouncer]\nlisten_port = 6432\n[databases]\n'
                   'app = host=127.0.0.2,,127.0.0.1 port=5432\n')
    r = subprocess.run(['./pgtally', '--check', str(ini)], capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert '%s:4:' % ini in out and 'empty' in out, out
    ini.write_text('[pgbouncer]\nlisten_port = 6432\n[databases]\n'
                   'app = host=127.0.0.2,127.0.0.1 port=5432 load_balance_hosts=disable\n')
    r = subprocess.run(['./pgtally', '--check', str(ini)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    ini.write_text('[pgbouncer]\nlisten_port = 6432\n[databases]\n'
                   'app = host=127.0.0.1 load_balance_hosts=random\n')
    r = subprocess.run(['./pgtally', '--check', str(ini)], capture_output=True, text=True)
    assert r.returncode != 0 and 'round-robin' in r.stdout + r.stderr


def _server_hosts(p, n):
    """Open n transactions at once through p; the address each one's server answers on."""
    conns = [p.connect() for _ in range(n)]
    try:
        for c in conns:
            c.execute('BEGIN')
        hosts = [c.execute('SELECT host(inet_server_addr())').fetchone()[0] for c in conns]
        for c in conns:
            c.execute('ROLLBACK')  # the servers stay open, idle in the pool
        return hosts
    finally:
        for c in conns:
            c.close()


def test_host_list_round_robin(pgtally, pg):
    """host=a,b: each new server connection goes to the next host of the list, as in PgBouncer."""
    line = {'host': '%s, %s' % (pg.socket_dir, pg.host), 'port': pg.port, 'dbname': 'app'}
    p = pgtally(ini={'default_pool_size': 4, 'workers': 1}, databases={'app': line})
    hosts = _server_hosts(p, 4)
    assert sorted(hosts, key=str) == sorted([None, None, pg.host, pg.host], key=str), hosts
    addrs = sorted(r['addr'] for r in p.admin('SHOW SERVERS') if r['database'] == 'app')
    assert addrs == [pg.host, pg.host, 'unix', 'unix'], addrs
    db = {r['name']: r for r in p.admin('SHOW DATABASES')}['app']
    assert db['host'] == line['host'] and db['load_balance_hosts'] == 'round-robin'
    pool = [r for r in p.admin('SHOW POOLS') if r['database'] == 'app'][0]
    assert pool['load_balance_hosts'] == 'round-robin'


@pytest.mark.parametrize('mode', ['round-robin', 'disable'])
def test_host_list_skips_a_host_that_fails(pgtally, pg, mode):
    """Nothing listens on 127.0.0.2: the next host is tried at once (not after
    server_login_retry), and with load_balance_hosts=disable later connections stay there."""
    line = {'host': '127.0.0.2,%s' % pg.host, 'port': pg.port, 'dbname': 'app',
            'load_balance_hosts': mode}
    p = pgtally(ini={'default_pool_size': 3, 'server_login_retry': 600, 'query_wait_timeout': 20,
                     'workers': 1}, databases={'app': line})
    hosts = _server_hosts(p, 3)
    assert hosts == [pg.host] * 3, hosts
    refused = p.log().count('127.0.0.2')
    assert refused >= 1
    if mode == 'disable':
        assert refused == 1, p.log()  # one failure moved it on; it stayed on the good host
    db = {r['name']: r for r in p.admin('SHOW DATABASES')}['app']
    assert db['load_balance_hosts'] == mode


def test_host_list_all_hosts_fail(pgtally, pg):
    """When every host of the list fails, the client is told, naming the last one tried."""
    line = {'host': '127.0.0.2,127.0.0.3', 'port': pg.port, 'dbname': 'app'}
    p = pgtally(ini={'server_login_retry': 600}, databases={'app': line})
    with pytest.raises(psycopg.OperationalError, match='server login failed') as e:
        p.connect()
    assert '127.0.0.3' in str(e.value) or '127.0.0.2' in str(e.value)
    log = p.log()
    assert '127.0.0.2' in log and '127.0.0.3' in log, log


def test_unknown_option_is_a_warning_not_a_refusal(pgtally):
    p = pgtally(ini={'some_future_option': '1'})
    with p.connect() as conn:
        assert conn.execute('SELECT 1').fetchone() == (1,)
    assert 'some_future_option' in p.log()


def test_version_and_help_flags():
    r = subprocess.run(['./pgtally', '-V'], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith('pgtally ')
    r = subprocess.run(['./pgtally', '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and '--daemon' in r.stdout and '--check' in r.stdout


def test_pidfile_of_a_running_instance_refuses_a_second(pgtally, tmp_path):
    # As PgBouncer: a pidfile naming a running process stops the start; a stale one is taken
    # over; at exit an instance removes the pidfile only when it is still its own.
    pidfile = str(tmp_path / 'pgtally.pid')
    first = pgtally(ini={'pidfile': pidfile})
    assert int(open(pidfile).read()) == first.pid
    with pytest.raises(harness.PoolerError, match='names process %d, which is running'
                       % first.pid):
        pgtally(ini={'pidfile': pidfile})
    assert int(open(pidfile).read()) == first.pid  # untouched by the refused start
    first.signal(signal.SIGINT)
    assert first.wait_exit(10) == 0
    assert not os.path.exists(pidfile)
    gone = subprocess.Popen(['true'])
    gone.wait()
    with open(pidfile, 'w') as f:
        f.write('%d\n' % gone.pid)
    second = pgtally(ini={'pidfile': pidfile})
    assert int(open(pidfile).read()) == second.pid
    assert 'is stale' in second.log()


@pytest.mark.parametrize('auth_type', ['hba', 'cert'])
def test_unsupported_auth_type_refused_by_check_and_start(tmp_path, pgtally, auth_type):
    ini = tmp_path / 'auth.ini'
    ini.write_text('[pgbouncer]\nauth_type = %s\n[databases]\napp = host=127.0.0.1\n' % auth_type)
    r = subprocess.run([harness.pooler.PGTALLY_BIN, '--check', str(ini)], capture_output=True,
                       text=True)
    message = 'auth_type %s is not supported by pgtally' % auth_type
    assert r.returncode != 0 and message in r.stdout + r.stderr, r.stdout + r.stderr
    with pytest.raises(harness.PoolerError, match=message):
        pgtally(ini={'auth_type': auth_type})
