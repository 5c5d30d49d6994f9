"""TLS both ways: clients (psql, psycopg 3, psycopg2, Python's ssl) to pgtally under each
client_tls_sslmode, pgtally to a PostgreSQL with ssl=on under server_tls_sslmode, certificates
picked up again on RELOAD. Every certificate is made here with the openssl CLI."""

import os
import shutil
import socket
import ssl
import struct
import subprocess

import psycopg
import psycopg2
import pytest

import harness
import rawpg
from harness import util

SSL_REQUEST = struct.pack('!II', 8, 80877103)
PSQL = os.path.join(util.PG_BIN, 'psql')


# ---------------------------------------------------------------- certificates

class Certs:
    """A directory of EC P-256 certificates: CAs, and leaves signed by one of them."""

    def __init__(self, path):
        self.path = str(path)
        self.serial = 1000

    def _file(self, name):
        return os.path.join(self.path, name)

    def _openssl(self, *args):
        proc = subprocess.run(['openssl'] + list(args), cwd=self.path, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise RuntimeError('openssl %s failed:\n%s' % (' '.join(args), proc.stderr))

    def ca(self, name):
        """(cert, key) of a new self-signed CA."""
        crt, key = self._file(name + '.crt'), self._file(name + '.key')
        self._openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                      '-nodes', '-keyout', key, '-out', crt, '-days', '2',
                      '-subj', '/CN=pgtally test %s' % name,
                      '-addext', 'basicConstraints=critical,CA:TRUE',
                      '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
        return crt, key

    def leaf(self, name, ca, cn, san=None):
        """(cert, key) for cn signed by ca ((cert, key)), with subjectAltName san if given."""
        crt, key, csr = (self._file(name + ext) for ext in ('.crt', '.key', '.csr'))
        ext = self._file(name + '.ext')
        with open(ext, 'w') as f:
            f.write('basicConstraints=CA:FALSE\n')
            if san:
                f.write('subjectAltName=%s\n' % san)
        self._openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                      '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=%s' % cn)
        self.serial += 1
        self._openssl('x509', '-req', '-in', csr, '-CA', ca[0], '-CAkey', ca[1],
                      '-set_serial', str(self.serial), '-days', '2', '-out', crt,
                      '-extfile', ext)
        os.chmod(key, 0o600)  # libpq refuses client keys others may read
        return crt, key


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    c = Certs(tmp_path_factory.mktemp('tls'))
    c.ca_pair = c.ca('ca')
    c.ca_crt = c.ca_pair[0]
    c.server = c.leaf('server', c.ca_pair, 'localhost', 'DNS:localhost,IP:127.0.0.1')
    c.client = c.leaf('client', c.ca_pair, 'app')
    c.other_ca_pair = c.ca('other-ca')
    c.other_ca_crt = c.other_ca_pair[0]
    c.other_client = c.leaf('other-client', c.other_ca_pair, 'app')
    return c


def client_tls(certs, mode='require', **extra):
    ini = {'client_tls_sslmode': mode, 'client_tls_cert_file': certs.server[0],
           'client_tls_key_file': certs.server[1]}
    ini.update(extra)
    return ini


def der(cert_file):
    with open(cert_file) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def raw_tls(p, tls_version=None, ciphers=None):
    """SSLRequest over a raw socket, then a TLS handshake with Python's ssl module (no
    verification). Returns (peer certificate DER, protocol, cipher name)."""
    sock = socket.create_connection((p.host, p.port), timeout=5)
    try:
        sock.sendall(SSL_REQUEST)
        answer = sock.recv(1)
        assert answer == b'S', 'pgtally answered %r to SSLRequest' % answer
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if tls_version:
            ctx.minimum_version = ctx.maximum_version = tls_version
        if ciphers:
            ctx.set_ciphers(ciphers)
        with ctx.wrap_socket(sock) as t:
            return t.getpeercert(binary_form=True), t.version(), t.cipher()[0]
    finally:
        sock.close()


def psql(dsn, command):
    proc = subprocess.run([PSQL, '-X', '-A', '-t', '-d', dsn, '-c', command],
                          capture_output=True, text=True, timeout=30)
    return proc.returncode, proc.stdout + proc.stderr


# ---------------------------------------------------------------- clients to pgtally

def test_psql_sslmode_require(pgtally, certs):
    p = pgtally(ini=client_tls(certs, 'require'))
    rc, out = psql(p.dsn(sslmode='require'), '\\conninfo')
    assert rc == 0, out
    assert 'SSL connection (protocol: TLSv1.3' in out
    rc, out = psql(p.dsn(sslmode='require'), 'SELECT 40 + 2')
    assert rc == 0 and out.strip() == '42', out


def test_psql_verify_full(pgtally, certs):
    p = pgtally(ini=client_tls(certs, 'require'))
    # By address (checked against the IP subjectAltName) and by name (hostaddr connects).
    for extra in ({}, {'host': 'localhost', 'hostaddr': '127.0.0.1'}):
        dsn = p.dsn(sslmode='verify-full', sslrootcert=certs.ca_crt, **extra)
        rc, out = psql(dsn, 'SELECT current_user')
        assert rc == 0 and out.strip() == 'app', out
    rc, out = psql(p.dsn(sslmode='verify-full', sslrootcert=certs.other_ca_crt), 'SELECT 1')
    assert rc != 0 and 'certificate verify failed' in out, out


def test_psycopg_require_and_verify_full(pgtally, certs):
    p = pgtally(ini=client_tls(certs, 'require'))
    with p.connect(sslmode='require') as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute('SELECT 1').fetchone() == (1,)
    with p.connect(sslmode='verify-full', sslrootcert=certs.ca_crt) as conn:
        assert conn.pgconn.ssl_in_use
        with conn.transaction():
            conn.execute('CREATE TEMP TABLE t (x int) ON COMMIT DROP')
            conn.execute('INSERT INTO t SELECT generate_series(1, 1000)')
            assert conn.execute('SELECT sum(x) FROM t').fetchone() == (500500,)


def test_psycopg_verify_full_wrong_ca_fails(pgtally, certs):
    p = pgtally(ini=client_tls(certs, 'require'))
    with pytest.raises(psycopg.OperationalError, match='certificate verify failed'):
        p.connect(sslmode='verify-full', sslrootcert=certs.other_ca_crt)
    # The pooler is unharmed.
    with p.connect(sslmode='verify-full', sslrootcert=certs.ca_crt) as conn:
        assert conn.execute('SELECT 1').fetchone() == (1,)


def test_psycopg2_require(pgtally, certs):
    p = pgtally(ini=client_tls(certs, 'prefer'))
    conn = psycopg2.connect(p.dsn(sslmode='require'))
    try:
        cur = conn.cursor()
        cur.execute('SELECT %s::int * 2', (21,))
        assert cur.fetchone() == (42,)
        assert conn.info.ssl_in_use
    finally:
        conn.close()


def test_large_data_through_tls(pgtally, certs):
    """Big rows and a big COPY: partial TLS writes, full input buffers, decrypted bytes that
    epoll cannot announce."""
    p = pgtally(ini=client_tls(certs, 'require'))
    with p.connect(sslmode='require') as conn:
        (v,) = conn.execute("SELECT repeat('x', 3000000)").fetchone()
        assert len(v) == 3000000
        rows = conn.execute('SELECT g, md5(g::text) FROM generate_series(1, 50000) g').fetchall()
        assert len(rows) == 50000 and rows[-1][0] == 50000
        big = 'y' * 2000000
        assert conn.execute('SELECT length(%s)', (big,)).fetchone() == (2000000,)
        with conn.transaction():
            conn.execute('CREATE TEMP TABLE c (a int, b text) ON COMMIT DROP')
            with conn.cursor().copy('COPY c FROM STDIN') as cp:
                for i in range(20000):
                    cp.write_row((i, 'z' * 100))
            assert conn.execute('SELECT count(*), sum(length(b)) FROM c').fetchone() == (
                20000, 2000000)


def test_require_refuses_plain_text(pgtally, certs):
    p = pgtally(ini=client_tls(certs, 'require'))
    with pytest.raises(psycopg.OperationalError, match='SSL required'):
        p.connect(sslmode='disable')
    rc, out = psql(p.dsn(sslmode='disable'), 'SELECT 1')
    assert rc != 0 and 'SSL required' in out, out
    # sslmode=prefer asks for TLS and gets it.
    with p.connect(sslmode='prefer') as conn:
        assert conn.pgconn.ssl_in_use
    # The unix socket is local: no TLS there, and no refusal either.
    with psycopg.connect(p.dsn(host=p.unix_socket_dir, sslmode='disable')) as conn:
        assert not conn.pgconn.ssl_in_use
        assert conn.execute('SELECT 1').fetchone() == (1,)


def test_allow_accepts_both(pgtally, certs):
    p = pgtally(ini=client_tls(certs, 'allow'))
    with p.connect(sslmode='disable') as conn:
        assert not conn.pgconn.ssl_in_use
    with p.connect(sslmode='require') as conn:
        assert conn.pgconn.ssl_in_use


def test_disable_answers_n(pgtally, certs):
    p = pgtally()  # client_tls_sslmode defaults to disable
    with pytest.raises(psycopg.OperationalError, match='does not support SSL'):
        p.connect(sslmode='require')
    with p.connect(sslmode='prefer') as conn:
        assert not conn.pgconn.ssl_in_use
        assert conn.execute('SELECT 1').fetchone() == (1,)


def test_plain_bytes_after_ssl_request_refused(pgtally, certs):
    """Bytes sent behind the SSLRequest before the handshake must not be taken as if they
    had come through TLS (CVE-2021-23214)."""
    p = pgtally(ini=client_tls(certs, 'allow', auth_type='trust'))
    sock = socket.create_connection((p.host, p.port), timeout=5)
    try:
        sock.sendall(SSL_REQUEST + rawpg.startup_packet({'user': 'app', 'database': 'app'}))
        data = b''
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    assert not data.startswith(b'S'), data
    assert data.startswith(b'E') and b'unencrypted data after SSL request' in data, data


def test_client_certificates_verify_ca(pgtally, certs):
    p = pgtally(ini=client_tls(certs, 'verify-ca', client_tls_ca_file=certs.ca_crt))
    with p.connect(sslmode='require', sslcert=certs.client[0], sslkey=certs.client[1]) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute('SELECT 1').fetchone() == (1,)
    # No client certificate, or one from another CA: the handshake fails.
    with pytest.raises(psycopg.OperationalError):
        p.connect(sslmode='require', sslcert='/nonexistent', sslkey='/nonexistent')
    with pytest.raises(psycopg.OperationalError):
        p.connect(sslmode='require', sslcert=certs.other_client[0],
                  sslkey=certs.other_client[1])
    with pytest.raises(psycopg.OperationalError, match='SSL required'):
        p.connect(sslmode='disable')


def test_protocols_and_ciphers(pgtally, certs):
    p = pgtally(ini=client_tls(certs, 'require', client_tls_protocols='tlsv1.3'))
    _, version, _ = raw_tls(p)
    assert version == 'TLSv1.3'
    with pytest.raises(ssl.SSLError):
        raw_tls(p, tls_version=ssl.TLSVersion.TLSv1_2)
    p.stop()

    cipher = 'ECDHE-ECDSA-AES128-GCM-SHA256'
    p = pgtally(ini=client_tls(certs, 'require', client_tls_protocols='tlsv1.2',
                               client_tls_ciphers=cipher))
    _, version, name = raw_tls(p, ciphers='ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384')
    assert (version, name) == ('TLSv1.2', cipher)
    with pytest.raises(ssl.SSLError):
        raw_tls(p, tls_version=ssl.TLSVersion.TLSv1_3)


def check_config(pg, settings):
    """pgtally --check on the ini these settings make: (exit status, output)."""
    p = harness.Pooler(pg, ini=settings)
    try:
        p.write_config()
        r = subprocess.run([harness.pooler.PGTALLY_BIN, '--check', p.ini_path],
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr
    finally:
        p.cleanup()


@pytest.mark.parametrize('keyword', ['legacy', 'compat', 'insecure', 'all', 'fast', 'normal',
                                     'secure', 'default'])
def test_cipher_keywords(pgtally, pg, certs, keyword):
    # PgBouncer's shortcuts (its example ini has "legacy"): pgtally starts with each, on
    # both sides, serves TLS 1.2 clients (where the list applies), and --check agrees.
    settings = client_tls(certs, 'require', client_tls_ciphers=keyword,
                          server_tls_ciphers=keyword)
    assert check_config(pg, settings) == (0, 'ok\n')
    p = pgtally(ini=settings)
    _, version, _ = raw_tls(p, tls_version=ssl.TLSVersion.TLSv1_2)
    assert version == 'TLSv1.2'
    with p.connect(sslmode='require') as conn:
        assert conn.execute('SELECT 1').fetchone() == (1,)


@pytest.mark.parametrize('ini, message', [
    ({'client_tls_cert_file': None}, 'needs client_tls_cert_file and client_tls_key_file'),
    ({'client_tls_protocols': 'tlsv9'}, 'unknown TLS protocol'),
    ({'client_tls_ciphers': 'NO-SUCH-CIPHER'}, 'client_tls_ciphers'),
    ({'client_tls_sslmode': 'verify-ca'}, 'needs client_tls_ca_file'),
    ({'client_tls_cert_file': '/nonexistent.crt'}, '/nonexistent.crt'),
])
def test_bad_settings_stop_startup(pgtally, pg, certs, ini, message):
    settings = client_tls(certs, 'require')
    settings.update(ini)
    with pytest.raises(harness.PoolerError, match=message):
        pgtally(ini=settings)
    # --check refuses them too, with the same words.
    rc, out = check_config(pg, settings)
    assert rc != 0 and message in out, out


def test_reload_picks_up_new_certificate(pgtally, certs, tmp_path):
    crt, key = str(tmp_path / 'live.crt'), str(tmp_path / 'live.key')
    shutil.copyfile(certs.server[0], crt)
    shutil.copyfile(certs.server[1], key)
    p = pgtally(ini=client_tls(certs, 'require', client_tls_cert_file=crt,
                               client_tls_key_file=key))
    first, _, _ = raw_tls(p)
    assert first == der(certs.server[0])
    old = p.connect(sslmode='require')
    try:
        # A new certificate under the same file names, then RELOAD.
        renewed = certs.leaf('renewed', certs.ca_pair, 'localhost', 'DNS:localhost,IP:127.0.0.1')
        shutil.copyfile(renewed[0], crt)
        shutil.copyfile(renewed[1], key)
        p.reload()
        assert p.wait_for_log('configuration reloaded')
        second, _, _ = raw_tls(p)
        assert second == der(renewed[0]) and second != first
        with p.connect(sslmode='verify-full', sslrootcert=certs.ca_crt) as conn:
            assert conn.execute('SELECT 1').fetchone() == (1,)
        # Sessions made before keep working.
        assert old.execute('SELECT 2').fetchone() == (2,)

        # A broken key file: the reload is refused and the last good certificate stays.
        with open(key, 'w') as f:
            f.write('not a key\n')
        p.reload()
        assert p.wait_for_log('reload failed: TLS: client_tls_key_file')
        assert raw_tls(p)[0] == second
    finally:
        old.close()


def test_reload_turns_client_tls_on(pgtally, certs):
    p = pgtally()
    with p.connect(sslmode='prefer') as conn:
        assert not conn.pgconn.ssl_in_use
    p.settings.update(client_tls(certs, 'require'))
    p.write_config()
    p.reload()
    assert p.wait_for_log('configuration reloaded')
    with p.connect(sslmode='prefer') as conn:
        assert conn.pgconn.ssl_in_use
    with pytest.raises(psycopg.OperationalError, match='SSL required'):
        p.connect(sslmode='disable')


# ---------------------------------------------------------------- pgtally to PostgreSQL

@pytest.fixture
def pg_ssl(pg, certs):
    """ssl = on in the test cluster for one test, with the server certificate from certs."""
    d = os.path.join(pg.tmpdir, 'ssl')
    os.makedirs(d, exist_ok=True)
    crt, key = os.path.join(d, 'server.crt'), os.path.join(d, 'server.key')
    shutil.copyfile(certs.server[0], crt)
    shutil.copyfile(certs.server[1], key)
    os.chmod(key, 0o600)  # PostgreSQL refuses a key others may read
    util.chown_tree(d)
    pg.sql("ALTER SYSTEM SET ssl_cert_file = '%s'" % crt)
    pg.sql("ALTER SYSTEM SET ssl_key_file = '%s'" % key)
    pg.sql('ALTER SYSTEM SET ssl = on')
    pg.sql('SELECT pg_reload_conf()')

    def direct_ssl():
        try:
            with pg.connect(sslmode='require') as conn:
                return conn.pgconn.ssl_in_use
        except psycopg.OperationalError:
            return False
    try:
        util.wait_until(direct_ssl, 10)
        assert direct_ssl(), 'PostgreSQL did not turn ssl on:\n' + pg.log()[-3000:]
        yield pg
    finally:
        for name in ('ssl', 'ssl_cert_file', 'ssl_key_file'):
            pg.sql('ALTER SYSTEM RESET %s' % name)
        pg.sql('SELECT pg_reload_conf()')

        def ssl_off():
            try:
                pg.connect(sslmode='require').close()
                return False
            except psycopg.OperationalError:
                return True
        util.wait_until(ssl_off, 10)


def backend_ssl(conn):
    return conn.execute('SELECT ssl, version FROM pg_stat_ssl '
                        'WHERE pid = pg_backend_pid()').fetchone()


def test_server_verify_full(pgtally, certs, pg_ssl):
    p = pgtally(ini={'server_tls_sslmode': 'verify-full', 'server_tls_ca_file': certs.ca_crt})
    with p.connect() as conn:
        ssl_on, version = backend_ssl(conn)
        assert ssl_on is True and version == 'TLSv1.3'
        (v,) = conn.execute("SELECT repeat('x', 2000000)").fetchone()
        assert len(v) == 2000000


def test_server_verify_full_wrong_ca_fails(pgtally, certs, pg_ssl):
    p = pgtally(ini={'server_tls_sslmode': 'verify-full',
                     'server_tls_ca_file': certs.other_ca_crt})
    with pytest.raises(psycopg.OperationalError, match='certificate verify failed'):
        p.connect()


def test_server_prefer_uses_tls_when_offered(pgtally, certs, pg_ssl):
    p = pgtally()  # server_tls_sslmode defaults to prefer
    with p.connect() as conn:
        assert backend_ssl(conn)[0] is True


def test_tls_on_both_sides(pgtally, certs, pg_ssl):
    p = pgtally(ini=client_tls(certs, 'require', server_tls_sslmode='verify-ca',
                               server_tls_ca_file=certs.ca_crt))
    with p.connect(sslmode='verify-full', sslrootcert=certs.ca_crt) as conn:
        assert conn.pgconn.ssl_in_use
        assert backend_ssl(conn)[0] is True
        rows = conn.execute('SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 30000) g'
                            ).fetchall()
        assert len(rows) == 30000 and rows[-1][0] == 30000


def test_server_require_without_server_ssl_fails(pgtally, pg):
    p = pgtally(ini={'server_tls_sslmode': 'require'})
    with pytest.raises(psycopg.OperationalError, match='does not accept TLS'):
        p.connect()


def test_server_prefer_falls_back_to_plain(pgtally, pg):
    p = pgtally(ini={'server_tls_sslmode': 'prefer'})
    with p.connect() as conn:
        assert backend_ssl(conn)[0] is False
