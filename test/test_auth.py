"""Authentication towards clients and towards PostgreSQL."""

import hashlib
import struct

import psycopg
import pytest

import rawpg


def sqlstate_of(excinfo):
    e = excinfo.value
    return getattr(e, 'sqlstate', None) or (e.diag.sqlstate if hasattr(e, 'diag') else None)


@pytest.mark.parametrize('auth_type', ['scram-sha-256', 'md5', 'plain'])
def test_client_auth_methods(pgtally, auth_type):
    p = pgtally(ini={'auth_type': auth_type})
    with p.connect() as conn:
        assert conn.execute('SELECT current_user').fetchone() == ('app',)
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(password='wrong')
    assert 'password authentication failed for user "app"' in str(ei.value)
    log = p.log()
    assert 'wrong password' in log
    assert 'app_pw' not in log and 'wrong' not in log.replace('wrong password', '')


def _auth_request(conn):
    """The next message, which must be an Authentication request: (code, data)."""
    t, body = conn.read_message()
    assert t == 'R', (t, rawpg.error_fields(body) if t == 'E' else body)
    return struct.unpack('!I', body[:4])[0], body[4:]


def test_auth_type_any_needs_a_forced_user(pgtally, pg):
    # As in PgBouncer: "any" checks no password, so a database without user= refuses the
    # login instead of letting the client in as whichever role it names.
    p = pgtally(ini={'auth_type': 'any'}, databases={
        'app2': {'host': pg.host, 'port': pg.port, 'dbname': 'app2', 'user': 'app'}})
    conn = rawpg.Conn(p.host, p.port)
    try:
        conn.send(rawpg.startup_packet({'user': 'other', 'database': 'app'}))
        t, body = conn.read_message()
        assert t == 'E', t
        fields = rawpg.error_fields(body)
        assert fields['S'] == 'FATAL' and fields['C'] == '08P01', fields
        assert 'auth_type any without a forced user' in fields['M'], fields
        assert conn.closed()
    finally:
        conn.close()
    assert p.wait_for_log(r'auth_type = any needs a forced user, and database app has no user=')
    # With a forced user it logs in, whatever the name and password given.
    with p.connect(user='nobody', dbname='app2', password='anything') as c:
        assert c.execute('SELECT current_user').fetchone() == ('app',)


@pytest.mark.parametrize('auth_type', ['scram-sha-256', 'md5', 'plain'])
def test_reload_between_the_steps_of_a_login(pgtally, auth_type):
    """A RELOAD replaces the auth_file's entries while a client is between two messages of its
    password exchange: the login goes on against the entry it began with (it once read the
    freed entry and failed as a wrong password, or worse)."""
    p = pgtally(ini={'auth_type': auth_type})
    conn = rawpg.Conn(p.host, p.port)
    try:
        conn.send(rawpg.startup_packet({'user': 'app', 'database': 'app'}))
        code, data = _auth_request(conn)
        p.admin('RELOAD')
        if auth_type == 'plain':
            assert code == 3
            conn.send(rawpg.message('p', b'app_pw\0'))
        elif auth_type == 'md5':
            assert code == 5
            inner = hashlib.md5(b'app_pw' + b'app').hexdigest().encode()
            conn.send(rawpg.message('p', b'md5' + hashlib.md5(inner + data).hexdigest().encode()
                                    + b'\0'))
        else:
            assert code == 10 and b'SCRAM-SHA-256' in data
            scram = rawpg.ScramClient('app_pw')
            conn.send(rawpg.message('p', scram.first()))
            code, server_first = _auth_request(conn)
            assert code == 11
            p.admin('RELOAD')  # and again between the two SCRAM messages
            conn.send(rawpg.message('p', scram.final(server_first)))
            code, server_final = _auth_request(conn)
            assert code == 12 and scram.check(server_final)
        code, _ = _auth_request(conn)
        assert code == 0
        conn.read_until('Z')
        conn.send(rawpg.query('SELECT current_user'))
        rows = [body for t, body in conn.read_until('Z') if t == 'D']
        assert len(rows) == 1 and rows[0].endswith(b'app'), rows
    finally:
        conn.close()
    assert 'authentication failed' not in p.log()


def test_unknown_user_looks_like_a_wrong_password(pgtally):
    p = pgtally()
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(user='nobody', password='x')
    assert 'password authentication failed for user "nobody"' in str(ei.value)
    assert 'no such user' in p.log()


def test_trust_needs_an_auth_file_entry(pgtally):
    p = pgtally(ini={'auth_type': 'trust'})
    with p.connect(password='') as conn:
        assert conn.execute('SELECT 1').fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError):
        p.connect(user='nobody', password='')


def test_stored_md5_hash_in_auth_file(pgtally, pg):
    # auth_file holds md5user's md5 hash from pg_authid; PostgreSQL asks pgtally for md5.
    p = pgtally(ini={'auth_type': 'md5'}, userlist={'md5user': pg.role_secret('md5user')})
    with p.connect(user='md5user', dbname='app') as conn:
        assert conn.execute('SELECT current_user').fetchone() == ('md5user',)
    with pytest.raises(psycopg.OperationalError):
        p.connect(user='md5user', password='nope')


def test_scram_passthrough_without_plaintext(pgtally, pg):
    # auth_file holds app's SCRAM secret from pg_authid: no plaintext anywhere. pgtally logs
    # in to PostgreSQL with the keys the client's own SCRAM login revealed.
    secret = pg.role_secret('app')
    assert secret.startswith('SCRAM-SHA-256$')
    p = pgtally(userlist={'app': secret})
    with p.connect() as conn:
        assert conn.execute('SELECT current_user').fetchone() == ('app',)
    with pytest.raises(psycopg.OperationalError):
        p.connect(password='wrong')


def test_password_on_database_line(pgtally, pg):
    # The database line forces user and password; clients log in as themselves.
    p = pgtally(databases={'forced': {'host': pg.host, 'port': pg.port, 'dbname': 'app',
                                      'user': 'other', 'password': 'other_pw'}})
    with p.connect(dbname='forced') as conn:
        assert conn.execute('SELECT current_user').fetchone() == ('other',)


def test_unknown_database(pgtally):
    p = pgtally()
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(dbname='nosuchdb')
    assert 'no such database: nosuchdb' in str(ei.value)


def test_fallback_database(pgtally, pg):
    p = pgtally(databases={'*': {'host': pg.host, 'port': pg.port}})
    with p.connect(dbname='app2') as conn:
        assert conn.execute('SELECT current_database()').fetchone() == ('app2',)


def test_server_login_failure_reaches_client(pgtally, pg):
    # The auth_file password is wrong for PostgreSQL: the client sees PostgreSQL's error.
    p = pgtally(ini={'auth_type': 'plain'}, userlist={'other': 'not_the_pw'})
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(user='other', password='not_the_pw')
    assert 'password authentication failed' in str(ei.value)
    # Everyone else carries on.
    with p.connect() as conn:
        assert conn.execute('SELECT 1').fetchone() == (1,)


def test_secrets_never_logged(pgtally, pg):
    p = pgtally(ini={'verbose': 2})
    with p.connect() as conn:
        conn.execute('SELECT 1')
    with pytest.raises(psycopg.OperationalError):
        p.connect(password='hunter2secret')
    log = p.log()
    assert 'app_pw' not in log
    assert 'hunter2secret' not in log


def test_startup_refusals_only_drop_that_client(pgtally):
    p = pgtally()
    good = p.connect()
    try:
        # Garbage instead of a startup packet.
        c = rawpg.Conn(p.host, p.port)
        c.send(b'\x00\x00\x00\x10garbagegarbage!!')
        t, body = c.read_message()
        assert t == 'E' and rawpg.error_fields(body)['C'] == '08P01'
        assert c.closed()
        # An unsupported startup parameter.
        c = rawpg.Conn(p.host, p.port)
        c.send(rawpg.startup_packet({'user': 'app', 'database': 'app', 'bogus_param': '1'}))
        t, body = c.read_message()
        assert t == 'E'
        assert 'unsupported startup parameter: bogus_param' in rawpg.error_fields(body)['M']
        # A replication connection.
        c = rawpg.Conn(p.host, p.port)
        c.send(rawpg.startup_packet({'user': 'app', 'database': 'app', 'replication': 'true'}))
        t, body = c.read_message()
        assert t == 'E' and 'replication' in rawpg.error_fields(body)['M']
        # The good client is untouched.
        assert good.execute('SELECT 1').fetchone() == (1,)
    finally:
        good.close()


def test_ignore_startup_parameters(pgtally):
    p = pgtally(ini={'ignore_startup_parameters': 'bogus_param', 'auth_type': 'trust'})
    c = rawpg.Conn(p.host, p.port)
    c.send(rawpg.startup_packet({'user': 'app', 'database': 'app', 'bogus_param': '1',
                                 'extra_float_digits': '2'}))
    msgs = c.read_until('Z')
    assert msgs[0][0] == 'R' and msgs[-1] == ('Z', b'I')
    c.send(rawpg.query('SELECT 1'))
    msgs = c.read_until('Z')
    assert [m[0] for m in msgs] == ['T', 'D', 'C', 'Z']


def test_ssl_and_gssenc_requests_refused_with_N(pgtally):
    p = pgtally(ini={'auth_type': 'trust'})
    for code in (80877103, 80877104):
        c = rawpg.Conn(p.host, p.port)
        c.send(b'\x00\x00\x00\x08' + code.to_bytes(4, 'big'))
        assert c.read_byte() == b'N'
        msgs = rawpg.login_trust(c, 'app', 'app')
        assert msgs[-1] == ('Z', b'I')
    # libpq with sslmode=prefer falls back to plain text.
    with p.connect(password='', sslmode='prefer') as conn:
        assert conn.execute('SELECT 1').fetchone() == (1,)


def test_negotiate_protocol_version(pgtally):
    p = pgtally(ini={'auth_type': 'trust'})
    c = rawpg.Conn(p.host, p.port)
    c.send(rawpg.startup_packet({'user': 'app', 'database': 'app', '_pq_.something': 'x'},
                                version=(3 << 16) | 2))
    t, body = c.read_message()
    assert t == 'v'
    assert int.from_bytes(body[:4], 'big') == 3 << 16
    assert int.from_bytes(body[4:8], 'big') == 1
    assert body[8:].rstrip(b'\0') == b'_pq_.something'
    msgs = c.read_until('Z')
    assert msgs[-1] == ('Z', b'I')


def test_auth_query_over_pooled_connection(pgtally, pg):
    # 'other' is not in auth_file: pgtally asks PostgreSQL for its secret as auth_user
    # (a superuser here, which may read pg_authid), then logs the client in with SCRAM and
    # passes the keys through to PostgreSQL.
    p = pgtally(ini={'auth_user': 'postgres'},
                userlist={'other': None, 'postgres': 'postgres'})
    with p.connect(user='other', password='other_pw') as conn:
        assert conn.execute('SELECT current_user').fetchone() == ('other',)
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(user='other', password='bad')
    assert 'password authentication failed for user "other"' in str(ei.value)
    # A role that does not exist looks like any other failed login.
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(user='nobody_at_all', password='x')
    assert 'password authentication failed' in str(ei.value)
    # The auth_query ran with the user name as a parameter on auth_user's pool.
    pools = p.admin('SHOW POOLS')
    assert any(r['user'] == 'postgres' for r in pools), pools
