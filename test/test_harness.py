"""test_harness: tests of the test harness itself (PostgreSQL fixture, pooler factory)."""

import hashlib
import os
import signal

import psycopg
import pytest

import harness
from harness import pooler as pooler_mod


# ---------------------------------------------------------------------- PostgreSQL fixture

def test_pg_settings(pg):
    settings = dict(pg.sql("SELECT name, setting FROM pg_settings WHERE name IN "
                           "('listen_addresses', 'port', 'fsync', 'max_connections', "
                           "'unix_socket_directories', 'server_version_num')"))
    assert settings['listen_addresses'] == '127.0.0.1,127.0.0.5'
    assert int(settings['port']) == pg.port
    assert settings['fsync'] == 'off'
    assert settings['max_connections'] == '300'
    assert settings['unix_socket_directories'] == pg.socket_dir
    assert settings['server_version_num'].startswith('15')
    assert os.path.exists(os.path.join(pg.socket_dir, '.s.PGSQL.%d' % pg.port))


def test_pg_roles_and_databases(pg):
    roles = dict(pg.sql("SELECT rolname, rolsuper FROM pg_roles WHERE rolcanlogin"))
    assert roles == {'postgres': True, 'app': False, 'md5user': False, 'other': False}
    owners = dict(pg.sql("SELECT datname, pg_get_userbyid(datdba) FROM pg_database "
                         "WHERE datname IN ('app', 'app2')"))
    assert owners == {'app': 'app', 'app2': 'app'}


def test_pg_hba_rules(pg):
    rules = pg.sql("SELECT type, database, user_name, address, auth_method "
                   "FROM pg_hba_file_rules ORDER BY line_number")
    assert rules == [
        ('local', ['all'], ['all'], None, 'trust'),
        ('host', ['all'], ['md5user'], '127.0.0.1', 'md5'),
        ('host', ['all'], ['all'], '127.0.0.1', 'scram-sha-256'),
    ]


def test_pg_secrets(pg):
    assert pg.role_secret('app').startswith('SCRAM-SHA-256$4096:')
    assert pg.role_secret('other').startswith('SCRAM-SHA-256$4096:')
    # PostgreSQL's md5 secret is "md5" + md5(password || username).
    assert pg.role_secret('md5user') == 'md5' + hashlib.md5(b'md5_pwmd5user').hexdigest()
    with pytest.raises(KeyError):
        pg.role_secret('nobody')


@pytest.mark.parametrize('user,dbname', [('app', 'app'), ('app', 'app2'), ('md5user', 'app'),
                                         ('other', 'app2'), ('postgres', 'postgres')])
def test_pg_password_logins(pg, user, dbname):
    with pg.connect(user=user, dbname=dbname) as conn:
        row = conn.execute("SELECT current_user, current_database(), "
                           "inet_server_addr()::text").fetchone()
    assert row == (user, dbname, '127.0.0.1/32')


@pytest.mark.parametrize('user', ['app', 'md5user'])
def test_pg_wrong_password_refused(pg, user):
    with pytest.raises(psycopg.OperationalError, match='password authentication failed'):
        pg.connect(user=user, password='wrong')


def test_pg_dsn(pg):
    dsn = pg.dsn(user='other', dbname='app2')
    assert 'host=127.0.0.1' in dsn and 'port=%d' % pg.port in dsn
    assert 'user=other' in dsn and 'password=other_pw' in dsn and 'dbname=app2' in dsn


def test_pg_restart(pg):
    old = pg.postmaster_pid()
    conn = pg.connect()
    pg.restart(mode='immediate')
    assert pg.is_running()
    assert pg.postmaster_pid() not in (None, old)
    with pytest.raises(psycopg.OperationalError):
        conn.execute('SELECT 1')
    conn.close()
    pg.stop(mode='fast')
    assert not pg.is_running()
    with pytest.raises(psycopg.OperationalError):
        pg.connect()
    pg.start()
    with pg.connect() as conn2:
        assert conn2.execute('SELECT 42').fetchone() == (42,)


# ---------------------------------------------------------------------- pooler helpers

def test_connstr_quoting():
    assert pooler_mod.connstr('host=x') == 'host=x'
    assert pooler_mod.connstr({'host': '127.0.0.1', 'port': 5432}) == 'host=127.0.0.1 port=5432'
    assert pooler_mod.connstr({'application_name': "a b'c"}) == "application_name='a b\\'c'"
    assert pooler_mod.connstr({'password': ''}) == "password=''"


def test_merge_removes_none():
    assert pooler_mod.merge({'a': 1, 'b': 2}, {'b': None, 'c': 3}) == {'a': 1, 'c': 3}
    assert pooler_mod.merge({'a': 1}, None) == {'a': 1}


def test_render_ini_and_userlist():
    text = harness.render_ini('pgtally', {'listen_port': 7000, 'so_reuseport': True},
                              {'app': {'host': 'h', 'dbname': 'app'}}, {'app': 'pool_size=2'})
    assert text.index('[databases]') < text.index('app = host=h dbname=app') \
        < text.index('[users]') < text.index('[pgtally]') < text.index('listen_port = 7000')
    assert 'so_reuseport = 1\n' in text
    assert harness.render_userlist({'a"b': 'p w'}) == '"a""b" "p w"\n'


# ---------------------------------------------------------------------- the pooler factory

def test_pgbouncer_query(pgbouncer, pg):
    p = pgbouncer()
    assert p.kind == 'pgbouncer' and p.is_running()
    with p.connect() as conn:
        assert conn.execute('SELECT current_user, current_database()').fetchone() == \
            ('app', 'app')
    with p.connect(user='other', dbname='app2') as conn:
        assert conn.execute('SELECT current_user, current_database()').fetchone() == \
            ('other', 'app2')
    # md5user: the client side speaks SCRAM to the pooler, the server side md5 to PostgreSQL.
    with p.connect(user='md5user') as conn:
        assert conn.execute('SELECT current_user').fetchone() == ('md5user',)
    with pytest.raises(psycopg.OperationalError):
        p.connect(password='wrong')
    assert 'login attempt: db=app user=app' in p.log()
    assert p.stop() == 0
    assert not p.is_running()


def test_pgbouncer_scram_secret_in_userlist(pgbouncer, pg):
    p = pgbouncer(userlist={'app': pg.role_secret('app'), 'other': None})
    with open(p.userlist_path) as f:
        assert '"app" "SCRAM-SHA-256$4096:' in f.read()
    with p.connect() as conn:
        assert conn.execute('SELECT 1').fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError):
        p.connect(user='other')


def test_pgbouncer_admin_console(pgbouncer):
    p = pgbouncer(ini={'default_pool_size': 3})
    with p.connect() as conn:
        conn.execute('SELECT 1')
    pools = {(r['database'], r['user']): r for r in p.admin('SHOW POOLS')}
    assert ('app', 'app') in pools
    assert pools[('app', 'app')]['pool_mode'] == 'transaction'
    config = {r['key']: r['value'] for r in p.admin('SHOW CONFIG', user='stats')}
    assert config['default_pool_size'] == '3'
    assert p.admin_dsn.endswith('dbname=pgbouncer') or 'dbname=pgbouncer' in p.admin_dsn


def test_pgbouncer_reload(pgbouncer):
    p = pgbouncer()
    p.settings['default_pool_size'] = 7
    p.write_config()
    p.reload()
    assert p.wait_for_log('(?i)got SIGHUP') is not None

    def pool_size():
        return {r['key']: r['value'] for r in p.admin('SHOW CONFIG')}['default_pool_size']
    assert harness.util.wait_until(lambda: pool_size() == '7', 5)
    assert p.is_running()


def test_pooler_signal_and_exit_status(pgbouncer):
    p = pgbouncer()
    p.signal(signal.SIGTERM)
    assert p.wait_exit(5) is not None
    assert not p.is_running()
    assert p.stop() == p.returncode


def test_pooler_start_failure_shows_log(pgbouncer):
    with pytest.raises(harness.PoolerError) as err:
        pgbouncer(ini={'auth_type': 'no-such-auth'})
    assert 'exited with status' in str(err.value)
    assert 'no-such-auth' in str(err.value)


def test_pooler_unix_socket_only(pgbouncer):
    p = pgbouncer(ini={'listen_addr': ''})
    assert 'host=/tmp/' in p.dsn()
    with p.connect() as conn:
        assert conn.execute('SELECT 2').fetchone() == (2,)


@pytest.mark.parametrize('kind', ['pgtally', 'pgbouncer'])
def test_pooler_smoke(pooler, kind):
    if kind == 'pgtally' and not os.path.exists(pooler_mod.PGTALLY_BIN):
        pytest.skip('./pgtally is not built yet')
    p = pooler(kind=kind)
    with p.connect() as conn:
        assert conn.execute('SELECT current_database()').fetchone() == ('app',)
    assert p.stop() == 0
