"""test_admin: the console (database pgtally, alias pgbouncer): SHOW columns, permissions,
control commands and the PgBouncer signals."""

import signal

import psycopg
import pytest

from harness.util import Background, wait_for

TEXT, INT4, INT8, NUMERIC, BYTEA = 25, 23, 20, 1700, 17

SOCKET_COLS = [
    ('type', TEXT), ('user', TEXT), ('database', TEXT), ('replication', TEXT),
    ('state', TEXT), ('addr', TEXT), ('port', INT4), ('local_addr', TEXT),
    ('local_port', INT4), ('connect_time', TEXT), ('request_time', TEXT), ('wait', INT4),
    ('wait_us', INT4), ('close_needed', INT4), ('ptr', TEXT), ('link', TEXT),
    ('remote_pid', INT4), ('tls', TEXT), ('application_name', TEXT),
    ('prepared_statements', INT4), ('id', INT8)]

STATS_NAMES = ['server_assignment_count', 'xact_count', 'query_count', 'received', 'sent',
               'xact_time', 'query_time', 'wait_time', 'client_parse_count',
               'server_parse_count', 'bind_count', 'client_login_count']
AVG_NAMES = ['server_assignment_count', 'xact_count', 'query_count', 'recv', 'sent',
             'xact_time', 'query_time', 'wait_time', 'client_parse_count',
             'server_parse_count', 'bind_count', 'client_login_count']
TOTALS_NAMES = ['server_assignment_count', 'xact_count', 'query_count', 'bytes_received',
                'bytes_sent', 'xact_time', 'query_time', 'wait_time', 'client_parse_count',
                'server_parse_count', 'bind_count', 'client_login_count']

EXPECTED_COLUMNS = {
    'VERSION': [('version', TEXT)],
    'POOLS': [('database', TEXT), ('user', TEXT)] + [(n, INT4) for n in (
        'cl_active', 'cl_waiting', 'cl_active_cancel_req', 'cl_waiting_cancel_req',
        'sv_active', 'sv_active_cancel', 'sv_being_canceled', 'sv_idle', 'sv_used',
        'sv_tested', 'sv_login', 'maxwait', 'maxwait_us')] + [
        ('pool_mode', TEXT), ('load_balance_hosts', TEXT)],
    'CLIENTS': SOCKET_COLS,
    'SERVERS': SOCKET_COLS,
    'STATS': [('database', TEXT)] + [('total_' + n, NUMERIC) for n in STATS_NAMES] +
             [('avg_' + n, NUMERIC) for n in AVG_NAMES],
    'STATS_TOTALS': [('database', TEXT)] + [(n, NUMERIC) for n in TOTALS_NAMES],
    'STATS_AVERAGES': [('database', TEXT)] + [
        ('avg_' + n if n.endswith(('parse_count', 'bind_count')) else n, NUMERIC)
        for n in TOTALS_NAMES],
    'TOTALS': [('name', TEXT), ('value', NUMERIC)],
    'CONFIG': [('key', TEXT), ('value', TEXT), ('default', TEXT), ('changeable', TEXT)],
    'DATABASES': [('name', TEXT), ('host', TEXT), ('port', INT4), ('database', TEXT),
                  ('force_user', TEXT), ('pool_size', INT4), ('min_pool_size', INT4),
                  ('reserve_pool_size', INT4), ('server_lifetime', INT4),
                  ('pool_mode', TEXT), ('load_balance_hosts', TEXT),
                  ('max_connections', INT4), ('current_connections', INT4),
                  ('max_client_connections', INT4), ('current_client_connections', INT4),
                  ('paused', INT4), ('disabled', INT4)],
    'USERS': [('name', TEXT), ('pool_size', TEXT), ('reserve_pool_size', TEXT),
              ('pool_mode', TEXT), ('max_user_connections', INT4),
              ('current_connections', INT4), ('max_user_client_connections', INT4),
              ('current_client_connections', INT4)],
    'LISTS': [('list', TEXT), ('items', INT4)],
    'MEM': [('name', TEXT), ('size', INT4), ('used', INT4), ('free', INT4),
            ('memtotal', INT4)],
    'STATE': [('key', TEXT), ('value', TEXT)],
    'FDS': [('fd', INT4), ('task', TEXT), ('user', TEXT), ('database', TEXT), ('addr', TEXT),
            ('port', INT4), ('cancel', INT8), ('link', INT4), ('client_encoding', TEXT),
            ('std_strings', TEXT), ('datestyle', TEXT), ('timezone', TEXT),
            ('password', TEXT), ('scram_client_key', BYTEA), ('scram_server_key', BYTEA)],
    'FINGERPRINTS': [('database', TEXT), ('user', TEXT), ('fingerprint', TEXT),
                     ('calls', NUMERIC), ('rows', NUMERIC), ('total_time_us', NUMERIC),
                     ('mean_time_us', NUMERIC), ('min_time_us', NUMERIC),
                     ('max_time_us', NUMERIC), ('errors', NUMERIC), ('calls_in_txn', NUMERIC),
                     ('nplus1', NUMERIC), ('first_seen', TEXT), ('last_seen', TEXT),
                     ('query', TEXT)],
    'WORKERS': [('worker', INT4), ('clients', INT4), ('servers', INT4), ('pools', INT4),
                ('fingerprints', INT4), ('nplus1_findings', INT4)],
    'NPLUS1': [('database', TEXT), ('user', TEXT), ('application_name', TEXT),
               ('route', TEXT), ('kind', TEXT), ('fingerprint', TEXT),
               ('source_fingerprint', TEXT), ('bursts', NUMERIC), ('last_calls', NUMERIC),
               ('max_calls', NUMERIC), ('total_time_us', NUMERIC), ('first_seen', TEXT),
               ('last_seen', TEXT), ('query', TEXT), ('source_query', TEXT),
               ('source_rows', NUMERIC), ('total_calls', NUMERIC)],
}


def console(p, user='admin', dbname=None):
    conn = psycopg.connect(p.dsn(user=user, dbname=dbname or p.admin_db), autocommit=True,
                           prepare_threshold=None)
    return conn, psycopg.ClientCursor(conn)


def rows(cur, command):
    cur.execute(command)
    names = [c.name for c in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def pool_row(p, db='app', user='app'):
    for r in p.admin('SHOW POOLS'):
        if r['database'] == db and r['user'] == user:
            return r
    return None


# ---------------------------------------------------------------------- SHOW

@pytest.fixture
def traffic_pooler(pgtally):
    p = pgtally()
    with p.connect(application_name='columns-test') as conn:
        conn.execute('SELECT 1')
    return p


@pytest.mark.parametrize('what', sorted(EXPECTED_COLUMNS))
def test_show_columns(pgtally, what):
    p = pgtally()
    with p.connect(application_name='columns-test') as conn:
        conn.execute('SELECT 1')
        admin, cur = console(p)
        with admin:
            cur.execute('SHOW ' + what)
            got = [(c.name, c.type_code) for c in cur.description]
            assert got == EXPECTED_COLUMNS[what]
            data = cur.fetchall()
            if what not in ('FINGERPRINTS', 'NPLUS1'):
                assert data, 'SHOW %s returned no rows' % what
            for row in data:
                assert len(row) == len(got)


def test_show_values(pgtally):
    p = pgtally()
    with p.connect(application_name='columns-test') as conn:
        pid = conn.execute('SELECT pg_backend_pid()').fetchone()[0]
        conn.execute('BEGIN')
        conn.execute('SELECT 1')
        pools = pool_row(p)
        assert pools['cl_active'] == 1 and pools['sv_active'] == 1
        assert pools['pool_mode'] == 'transaction'
        clients = [r for r in p.admin('SHOW CLIENTS') if r['database'] == 'app']
        assert len(clients) == 1
        assert clients[0]['state'] == 'active'
        assert clients[0]['application_name'] == 'columns-test'
        assert clients[0]['addr'] == '127.0.0.1' and clients[0]['port'] > 0
        assert clients[0]['local_port'] == p.port
        servers = [r for r in p.admin('SHOW SERVERS') if r['database'] == 'app']
        assert [s['remote_pid'] for s in servers] == [pid]
        assert servers[0]['link'] == clients[0]['ptr']
        conn.execute('COMMIT')
    dbs = {r['name']: r for r in p.admin('SHOW DATABASES')}
    assert dbs['app']['pool_size'] == 5 and dbs['app']['database'] == 'app'
    assert dbs['app2']['current_connections'] == 0      # configured, never used
    state = {r['key']: r['value'] for r in p.admin('SHOW STATE')}
    assert state == {'active': 'yes', 'paused': 'no', 'suspended': 'no'}
    config = {r['key']: r for r in p.admin('SHOW CONFIG')}
    assert config['default_pool_size']['value'] == '5'
    assert config['default_pool_size']['default'] == '20'
    assert config['default_pool_size']['changeable'] == 'yes'
    assert config['listen_port']['changeable'] == 'no'
    lists = {r['list']: r['items'] for r in p.admin('SHOW LISTS')}
    assert lists['pools'] == 1 and lists['databases'] >= 1
    # conn has left: its client object waits in the cache for the next login, as in PgBouncer
    # (on the sanitizer build it goes back to malloc), and SHOW LISTS counts it as SHOW MEM does.
    def show_lists():
        lists.update((r['list'], r['items']) for r in p.admin('SHOW LISTS'))
        return lists['used_clients'] == 1  # the console asking
    assert wait_for(show_lists, timeout=5), lists
    mem = {r['name']: r for r in p.admin('SHOW MEM')}
    assert lists['free_clients'] == mem['client_cache']['free'], (lists, mem)
    assert lists['free_servers'] == mem['server_cache']['free'], (lists, mem)
    version = p.admin('SHOW VERSION')[0]['version']
    assert version.startswith('pgtally ')


def test_show_workers_one_worker(pgtally):
    p = pgtally(ini={'workers': 1})
    with p.connect() as a, p.connect() as b:
        for conn in (a, b):          # both hold a server: two server connections
            conn.execute('BEGIN')
            conn.execute('SELECT 1')
        workers = p.admin('SHOW WORKERS')
        assert len(workers) == 1
        w = workers[0]
        assert w['worker'] == 0
        assert w['clients'] == 3     # a, b and the console asking
        assert w['servers'] == 2
        assert w['pools'] == 1
        assert w['fingerprints'] >= 1
        assert w['nplus1_findings'] == 0
        a.execute('COMMIT')
        b.execute('COMMIT')
    # The clients are gone; their servers stay pooled.
    assert wait_for(lambda: p.admin('SHOW WORKERS')[0]['clients'] == 1)
    w = p.admin('SHOW WORKERS')[0]
    assert w['servers'] == 2
    assert sum(r['sv_idle'] for r in p.admin('SHOW POOLS')) == 2


def test_show_mem_counts_the_connection_caches(pgtally):
    p = pgtally(ini={'workers': 1})

    def mem():
        return {r['name']: r for r in p.admin('SHOW MEM')}

    conns = [p.connect() for _ in range(3)]
    for conn in conns:
        conn.execute('BEGIN')
        conn.execute('SELECT 1')  # each holds a server
    busy = mem()
    cl, sv = busy['client_cache'], busy['server_cache']
    assert cl['size'] % 64 == 0 and sv['size'] % 64 == 0  # objects on cache lines
    assert cl['used'] == 4  # the three and the console asking
    assert sv['used'] == 3
    for r in (cl, sv):
        assert r['memtotal'] == r['size'] * (r['used'] + r['free'])
    for conn in conns:
        conn.execute('COMMIT')
        conn.close()
    # The clients' objects go back to the cache (or to malloc on the sanitizer build); the
    # servers stay pooled.
    assert wait_for(lambda: mem()['client_cache']['used'] == 1)
    after = mem()
    assert after['server_cache']['used'] == 3
    assert after['client_cache']['free'] in (0, cl['free'] + 3)


def test_stats_move_after_traffic(pgtally):
    p = pgtally()
    before = {r['database']: r for r in p.admin('SHOW STATS')}
    assert 'app' not in before
    with p.connect() as conn:
        for _ in range(5):
            conn.execute('SELECT 1')
        with conn.transaction():
            conn.execute('SELECT 2')
            conn.execute('SELECT 3')
    stats = {r['database']: r for r in p.admin('SHOW STATS')}['app']
    assert stats['total_query_count'] >= 7
    assert stats['total_xact_count'] >= 6
    assert stats['total_received'] > 0 and stats['total_sent'] > 0
    assert stats['total_client_login_count'] == 1
    totals = {r['name']: r['value'] for r in p.admin('SHOW TOTALS')}
    assert totals['total_query_count'] == stats['total_query_count']
    # PgBouncer's row names (not the SHOW STATS column names)
    assert totals['total_client_bytes'] == stats['total_received']
    assert totals['total_server_bytes'] == stats['total_sent']
    assert {'avg_client_bytes', 'avg_server_bytes'} <= set(totals)
    p.admin('RESET STATS')
    stats = {r['database']: r for r in p.admin('SHOW STATS')}['app']
    assert stats['total_query_count'] == 0 and stats['total_received'] == 0
    p.admin('RESET FINGERPRINTS')
    p.admin('RESET NPLUS1')


def test_alias_and_several_commands(pgtally):
    p = pgtally()
    conn, cur = console(p, dbname='pgbouncer')
    with conn:
        cur.execute('SHOW VERSION; SHOW STATE;')
        assert cur.fetchall()[0][0].startswith('pgtally')
        assert cur.nextset()
        assert ('active', 'yes') in cur.fetchall()
        with pytest.raises(psycopg.errors.SyntaxError, match='SHOW HELP'):
            cur.execute('FROBNICATE')
        with pytest.raises(psycopg.errors.SyntaxError, match='SHOW HELP'):
            cur.execute('SHOW NOTHING')
        notices = []
        # A Diagnostic is only valid inside the handler.
        conn.add_notice_handler(lambda d: notices.append((d.message_primary, d.message_detail)))
        cur.execute('SHOW HELP')
        assert notices and 'SHOW STATS' in (notices[0][1] or '')
        assert 'KILL_CLIENT' in notices[0][1]
        # Session settings some drivers send on connect are accepted.
        cur.execute("SET client_encoding = 'UTF8'")


def test_extended_protocol_is_refused(pgtally):
    p = pgtally()
    with psycopg.connect(p.admin_dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match='simple query'):
            conn.execute('SHOW VERSION', prepare=True)
        # The connection stays usable.
        assert psycopg.ClientCursor(conn).execute('SHOW VERSION').fetchone()


# ---------------------------------------------------------------------- permissions

def test_permissions(pgtally):
    p = pgtally()
    # stats_users: SHOW only (and not FDS).
    conn, cur = console(p, user='stats')
    with conn:
        assert rows(cur, 'SHOW POOLS') is not None
        for cmd in ('PAUSE', 'RESUME', 'RELOAD', 'KILL app', 'SET default_pool_size = 3',
                    'SHUTDOWN', 'RESET STATS', 'DISABLE app'):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match='admin'):
                cur.execute(cmd)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            cur.execute('SHOW FDS')
    assert {r['key']: r['value'] for r in p.admin('SHOW STATE')}['paused'] == 'no'
    # Anyone else is refused at login with a clear message.
    with pytest.raises(psycopg.OperationalError, match='not allowed to connect to the admin'):
        console(p, user='app')
    # admin_users may do everything.
    conn, cur = console(p)
    with conn:
        cur.execute('SHOW FDS')
        cur.execute('PAUSE')
        cur.execute('RESUME')


# ---------------------------------------------------------------------- control

def test_pause_holds_and_resume_releases(pgtally):
    p = pgtally()
    with p.connect() as conn:
        conn.execute('SELECT 1')
        p.admin('PAUSE')
        assert {r['key']: r['value'] for r in p.admin('SHOW STATE')}['paused'] == 'yes'
        q = Background(lambda: conn.execute('SELECT 42').fetchone()[0])
        assert wait_for(lambda: pool_row(p)['cl_waiting'] == 1)
        assert not q.done.wait(0.3)
        p.admin('RESUME')
        assert q.done.wait(5) and q.result == 42
        assert pool_row(p)['cl_waiting'] == 0


def test_pause_waits_for_running_transactions(pgtally):
    p = pgtally()
    with p.connect() as conn:
        conn.execute('BEGIN')
        conn.execute('SELECT 1')
        def pause_then_state():
            admin, cur = console(p)
            with admin:
                cur.execute('PAUSE; SHOW STATE')   # the rest runs once PAUSE is done
                assert cur.statusmessage == 'PAUSE'
                assert cur.nextset()
                return dict(cur.fetchall())
        pause = Background(pause_then_state)
        assert not pause.done.wait(0.4), 'PAUSE answered while a transaction was open'
        assert {r['key']: r['value'] for r in p.admin('SHOW STATE')}['paused'] == 'yes'
        conn.execute('COMMIT')
        assert pause.done.wait(5) and pause.error is None, pause.error
        assert pause.result['paused'] == 'yes'
        p.admin('RESUME')


def test_pause_and_resume_one_database(pgtally):
    p = pgtally()
    with p.connect() as c1, p.connect(dbname='app2') as c2:
        p.admin('PAUSE app')
        q = Background(lambda: c1.execute('SELECT 1').fetchone())
        assert c2.execute('SELECT 2').fetchone() == (2,)   # app2 is not paused
        assert not q.done.wait(0.3)
        dbs = {r['name']: r for r in p.admin('SHOW DATABASES')}
        assert dbs['app']['paused'] == 1 and dbs['app2']['paused'] == 0
        p.admin('RESUME app')
        assert q.done.wait(5) and q.result == (1,)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        p.admin('RESUME app')
    with pytest.raises(psycopg.errors.InvalidCatalogName):
        p.admin('PAUSE nosuchdb')


def test_kill_drops_the_pool(pgtally):
    p = pgtally()
    conn = p.connect()
    conn.execute('SELECT 1')
    assert pool_row(p)['sv_idle'] == 1
    p.admin('KILL app')
    with pytest.raises(psycopg.OperationalError):
        conn.execute('SELECT 1')
    conn.close()
    row = pool_row(p)
    assert row['cl_active'] == 0 and row['sv_idle'] == 0 and row['sv_active'] == 0
    # Like PgBouncer, the database stays paused until RESUME.
    with p.connect() as again:
        q = Background(lambda: again.execute('SELECT 7').fetchone()[0])
        assert not q.done.wait(0.3)
        p.admin('RESUME app')
        assert q.done.wait(5) and q.result == 7


def test_kill_client(pgtally):
    p = pgtally()
    with p.connect() as victim, p.connect() as other:
        victim.execute('SELECT 1')
        other.execute('SELECT 1')
        ids = [r['id'] for r in p.admin('SHOW CLIENTS') if r['database'] == 'app']
        assert len(ids) == 2
        p.admin('KILL_CLIENT %d' % ids[0])
        gone = [conn for conn in (victim, other) if _broken(conn)]
        assert len(gone) == 1
        assert [r['id'] for r in p.admin('SHOW CLIENTS') if r['database'] == 'app'] == ids[1:]
    with pytest.raises(psycopg.errors.UndefinedObject):
        p.admin('KILL_CLIENT 999999')


def _broken(conn):
    try:
        conn.execute('SELECT 1')
        return False
    except psycopg.OperationalError:
        return True


def test_disable_enable(pgtally):
    p = pgtally()
    p.admin('DISABLE app')
    with pytest.raises(psycopg.OperationalError, match='disabled'):
        p.connect()
    assert {r['name']: r for r in p.admin('SHOW DATABASES')}['app']['disabled'] == 1
    p.admin('ENABLE app')
    with p.connect() as conn:
        assert conn.execute('SELECT 1').fetchone() == (1,)


def test_reconnect_and_wait_close(pgtally):
    p = pgtally()
    with p.connect() as conn:
        before = conn.execute('SELECT pg_backend_pid()').fetchone()[0]
        conn.execute('BEGIN')
        p.admin('RECONNECT app')
        servers = [r for r in p.admin('SHOW SERVERS') if r['database'] == 'app']
        assert [s['close_needed'] for s in servers] == [1]
        wait = Background(lambda: p.admin('WAIT_CLOSE app'))
        assert not wait.done.wait(0.4), 'WAIT_CLOSE answered with a marked server in use'
        conn.execute('COMMIT')
        assert wait.done.wait(5) and wait.error is None
        after = conn.execute('SELECT pg_backend_pid()').fetchone()[0]
        assert after != before


def test_exit_while_wait_close_waits(pgtally):
    """Regression (check-asan, LeakSanitizer): a console command still waiting (here
    WAIT_CLOSE) when pgtally exited was never freed, and the sanitizer build exited 1."""
    p = pgtally()
    conn = p.connect()
    conn.execute('BEGIN')
    p.admin('RECONNECT app')
    wait = Background(lambda: p.admin('WAIT_CLOSE app'))
    assert not wait.done.wait(0.4)
    p.signal(signal.SIGQUIT)  # immediate shutdown, the console still waiting
    assert p.wait_exit(5) == 0
    conn.close()


def test_reload_applies_pool_size(pgtally):
    p = pgtally(ini={'default_pool_size': 1})
    with p.connect() as a, p.connect() as b:
        a.execute('BEGIN')
        a.execute('SELECT 1')
        q = Background(lambda: b.execute('SELECT 2').fetchone()[0])
        assert wait_for(lambda: pool_row(p)['cl_waiting'] == 1)
        assert not q.done.wait(0.3)
        p.settings['default_pool_size'] = 2
        p.write_config()
        p.admin('RELOAD')
        assert q.done.wait(5) and q.result == 2
        a.execute('COMMIT')
    assert {r['name']: r for r in p.admin('SHOW DATABASES')}['app']['pool_size'] == 2


def test_reload_with_new_dbname_reconnects(pgtally, pg):
    """A changed dbname (not only host or port) replaces the servers, as in PgBouncer: idle ones
    at once, one in a transaction when it is released; pool_size still holds."""
    p = pgtally(ini={'default_pool_size': 2})
    with p.connect() as idle, p.connect() as busy:
        assert idle.execute('SELECT current_database()').fetchone() == ('app',)
        busy.execute('BEGIN')
        assert busy.execute('SELECT current_database()').fetchone() == ('app',)
        p.databases['app'] = {'host': pg.host, 'port': pg.port, 'dbname': 'app2'}
        p.write_config()
        p.admin('RELOAD')
        # The client that was idle gets a server of the new database on its next transaction.
        assert idle.execute('SELECT current_database()').fetchone() == ('app2',)
        # The open transaction keeps its server until it ends; the next one has a new server.
        assert busy.execute('SELECT current_database()').fetchone() == ('app',)
        busy.execute('COMMIT')
        assert busy.execute('SELECT current_database()').fetchone() == ('app2',)
        with p.connect() as new:
            assert new.execute('SELECT current_database()').fetchone() == ('app2',)
        servers = [s for s in p.admin('SHOW SERVERS') if s['database'] == 'app']
        assert len(servers) <= 2 and not [s for s in servers if s['close_needed']], servers
        assert [(r['database'], r['user']) for r in p.admin('SHOW POOLS')
                if r['database'] == 'app'] == [('app', 'app')]
    assert {r['name']: r for r in p.admin('SHOW DATABASES')}['app']['database'] == 'app2'


def test_reload_with_new_forced_user_moves_the_pool(pgtally, pg):
    """A changed forced user takes over the pool, as PgBouncer renames its forced user: the
    clients already connected run as the new user, and the pool (one row, one pool_size) is
    the new user's."""
    line = {'host': pg.host, 'port': pg.port, 'dbname': 'app'}
    p = pgtally(ini={'default_pool_size': 1},
                databases={'app': dict(line, user='app', password='app_pw')})
    with p.connect() as a, p.connect(user='md5user') as b:
        assert a.execute('SELECT current_user').fetchone() == ('app',)
        a.execute('BEGIN')
        a.execute('SELECT 1')
        p.databases['app'] = dict(line, user='other', password='other_pw')
        p.write_config()
        p.admin('RELOAD')
        pools = [r for r in p.admin('SHOW POOLS') if r['database'] == 'app']
        assert [(r['user'], r['cl_active'], r['sv_active']) for r in pools] == \
            [('other', 2, 1)], pools
        # pool_size 1 is still one server for the database: b waits for a's transaction.
        q = Background(lambda: b.execute('SELECT current_user').fetchone()[0])
        assert wait_for(lambda: pool_row(p, user='other')['cl_waiting'] == 1)
        assert not q.done.wait(0.3)
        a.execute('COMMIT')
        assert q.done.wait(5) and q.error is None and q.result == 'other', q.error
        assert a.execute('SELECT current_user').fetchone() == ('other',)
        with p.connect() as c:
            assert c.execute('SELECT current_user').fetchone() == ('other',)
        servers = [s for s in p.admin('SHOW SERVERS') if s['database'] == 'app']
        assert [s['user'] for s in servers] == ['other'], servers
        users = {r['name']: r for r in p.admin('SHOW USERS')}
        assert users['other']['current_connections'] == 1
        assert users.get('app', {}).get('current_connections', 0) == 0


def test_set(pgtally):
    p = pgtally(ini={'default_pool_size': 1})
    with p.connect() as a, p.connect() as b:
        a.execute('BEGIN')
        a.execute('SELECT 1')
        q = Background(lambda: b.execute('SELECT 2').fetchone()[0])
        assert wait_for(lambda: pool_row(p)['cl_waiting'] == 1)
        p.admin('SET default_pool_size = 3')
        assert q.done.wait(5) and q.result == 2
        a.execute('COMMIT')
    config = {r['key']: r['value'] for r in p.admin('SHOW CONFIG')}
    assert config['default_pool_size'] == '3'
    p.admin("SET server_reset_query TO 'DISCARD ALL'")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match='cannot be changed'):
        p.admin('SET listen_port = 7000')
    with pytest.raises(psycopg.errors.InvalidParameterValue, match='unknown option'):
        p.admin('SET no_such_option = 1')
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        p.admin('SET default_pool_size = lots')


def test_suspend_and_resume(pgtally):
    p = pgtally()
    with p.connect() as conn:
        conn.execute('SELECT 1')
        p.admin('SUSPEND')
        assert {r['key']: r['value'] for r in p.admin('SHOW STATE')}['suspended'] == 'yes'
        q = Background(lambda: conn.execute('SELECT 5').fetchone()[0])
        assert not q.done.wait(0.3)
        p.admin('RESUME')
        assert q.done.wait(5) and q.result == 5
    assert {r['key']: r['value'] for r in p.admin('SHOW STATE')}['active'] == 'yes'


def test_shutdown(pgtally):
    p = pgtally()
    conn, cur = console(p)
    try:
        cur.execute('SHUTDOWN')
    except psycopg.OperationalError:
        pass   # the process may be gone before the answer is read
    assert p.wait_exit(5) == 0


def test_shutdown_wait_for_clients(pgtally):
    p = pgtally()
    client = p.connect()
    client.execute('SELECT 1')
    p.admin('SHUTDOWN WAIT_FOR_CLIENTS')
    assert p.wait_exit(0.5) is None, 'exited with a client still connected'
    assert client.execute('SELECT 1').fetchone() == (1,)
    client.close()
    assert p.wait_exit(5) == 0


# ---------------------------------------------------------------------- signals

def test_signals(pgtally):
    p = pgtally()
    with p.connect() as conn:
        conn.execute('SELECT 1')
        p.signal(signal.SIGUSR1)
        assert wait_for(lambda: {r['key']: r['value']
                                 for r in p.admin('SHOW STATE')}['paused'] == 'yes')
        q = Background(lambda: conn.execute('SELECT 3').fetchone()[0])
        assert not q.done.wait(0.3)
        p.signal(signal.SIGUSR2)
        assert q.done.wait(5) and q.result == 3
    p.settings['default_pool_size'] = 9
    p.write_config()
    p.reload()
    assert wait_for(lambda: {r['name']: r for r in p.admin('SHOW DATABASES')}
                    ['app']['pool_size'] == 9)
