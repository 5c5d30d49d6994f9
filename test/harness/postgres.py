"""postgres: a throwaway PostgreSQL 15 cluster with the roles and databases the tests expect."""

import atexit
import os
import subprocess

import psycopg
from psycopg.conninfo import make_conninfo

from . import util

# Plaintext passwords of the roles we create, and of the pooler-only users (admin, stats).
PASSWORDS = {
    'postgres': 'postgres',
    'app': 'app_pw',
    'md5user': 'md5_pw',
    'other': 'other_pw',
    'admin': 'admin_pw',
    'stats': 'stats_pw',
}

PG_HBA = """\
# written by test/harness/postgres.py
local all all trust
host all md5user 127.0.0.1/32 md5
host all all 127.0.0.1/32 scram-sha-256
"""

SETTINGS = {
    # 127.0.0.5 too, for a host name with two addresses (test_dns.py); nothing listens on
    # 127.0.0.2 and 127.0.0.3 (test_failures.py)
    'listen_addresses': "'127.0.0.1,127.0.0.5'",
    'fsync': 'off',
    'synchronous_commit': 'off',
    'full_page_writes': 'off',
    'shared_buffers': "'16MB'",
    'max_connections': '300',
    'max_wal_size': "'256MB'",
    'password_encryption': "'scram-sha-256'",
    'log_line_prefix': "'%m [%p] %q%u@%d '",
    'log_connections': 'on',
    'log_disconnections': 'on',
    'lc_messages': "'C'",
}

BOOTSTRAP_SQL = [
    "ALTER ROLE postgres PASSWORD 'postgres'",
    "CREATE ROLE app LOGIN PASSWORD 'app_pw'",
    # md5user must be stored as an md5 hash: pg_hba asks it for md5 auth.
    "SET password_encryption = 'md5'",
    "CREATE ROLE md5user LOGIN PASSWORD 'md5_pw'",
    "RESET password_encryption",
    "CREATE ROLE other LOGIN PASSWORD 'other_pw'",
    "CREATE DATABASE app OWNER app",
    "CREATE DATABASE app2 OWNER app",
]


class PgCluster:
    """One PostgreSQL instance in a temp dir under /tmp, listening on 127.0.0.1:port and on a
    unix socket in that dir. As root, everything runs as the postgres user."""

    def __init__(self, port=None, settings=None):
        self.host = '127.0.0.1'
        self.port = port or util.free_port()
        self.tmpdir = util.make_tempdir('pgtally-pg-', for_service=True)
        self.socket_dir = self.tmpdir
        self.datadir = os.path.join(self.tmpdir, 'data')
        self.logfile = os.path.join(self.tmpdir, 'postgresql.log')
        self.settings = dict(SETTINGS, **(settings or {}))
        self._started = False
        atexit.register(self.destroy)

    # ------------------------------------------------------------------ lifecycle

    def _run(self, argv, check=True, timeout=120):
        # Own session: a Ctrl-C in the terminal must not reach the postmaster behind our back.
        proc = subprocess.run(util.as_service_user(argv), cwd=self.tmpdir, check=False,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout, start_new_session=True)
        if check and proc.returncode != 0:
            raise RuntimeError('%s failed (exit %d):\n%s\n--- server log ---\n%s' % (
                ' '.join(argv), proc.returncode, proc.stdout, self.log()))
        return proc

    def init(self):
        """initdb, configuration, start, roles and databases."""
        pwfile = os.path.join(self.tmpdir, 'pwfile')
        with open(pwfile, 'w') as f:
            f.write(PASSWORDS['postgres'] + '\n')
        util.chown_tree(self.tmpdir)
        self._run([os.path.join(util.PG_BIN, 'initdb'), '-D', self.datadir, '-U', 'postgres',
                   '--pwfile', pwfile, '--auth-local=trust', '--auth-host=scram-sha-256',
                   '-E', 'UTF8', '--locale=C', '--no-sync'])
        os.unlink(pwfile)
        conf = dict(self.settings, port=str(self.port),
                    unix_socket_directories="'%s'" % self.socket_dir)
        with open(os.path.join(self.datadir, 'postgresql.conf'), 'a') as f:
            f.write('\n# test harness\n')
            for key, value in conf.items():
                f.write('%s = %s\n' % (key, value))
        with open(os.path.join(self.datadir, 'pg_hba.conf'), 'w') as f:
            f.write(PG_HBA)
        util.chown_tree(self.datadir)
        self.start()
        with self.superuser() as conn:
            for stmt in BOOTSTRAP_SQL:
                conn.execute(stmt)
        return self

    def start(self):
        self._run([os.path.join(util.PG_BIN, 'pg_ctl'), '-D', self.datadir, '-l', self.logfile,
                   '-w', '-t', '60', 'start'])
        self._started = True

    def stop(self, mode='fast'):
        """Stop the server; mode is 'smart', 'fast' or 'immediate' (a crash, as with kill -9)."""
        if not os.path.exists(os.path.join(self.datadir, 'postmaster.pid')):
            return
        self._run([os.path.join(util.PG_BIN, 'pg_ctl'), '-D', self.datadir, '-m', mode, '-w',
                   '-t', '60', 'stop'], check=False)

    def restart(self, mode='fast'):
        self.stop(mode)
        self.start()

    def is_running(self):
        proc = self._run([os.path.join(util.PG_BIN, 'pg_ctl'), '-D', self.datadir, 'status'],
                         check=False)
        return proc.returncode == 0

    def postmaster_pid(self):
        """The postmaster's pid, or None when it is not running."""
        try:
            with open(os.path.join(self.datadir, 'postmaster.pid')) as f:
                return int(f.readline())
        except (FileNotFoundError, ValueError):
            return None

    def destroy(self):
        """Stop (immediately) and remove the temp dir; safe to call twice."""
        if self.tmpdir is None:
            return
        if self._started:
            self.stop('immediate')
        util.remove_tree(self.tmpdir)
        self.tmpdir = None

    # ------------------------------------------------------------------ connecting

    def dsn(self, user='app', dbname='app', password=None, host=None, **extra):
        """A libpq connection string over TCP to 127.0.0.1 (or host, e.g. the socket dir)."""
        if password is None:
            password = PASSWORDS.get(user)
        params = dict(host=host or self.host, port=self.port, dbname=dbname, user=user)
        if password is not None:
            params['password'] = password
        params.update(extra)
        return make_conninfo(**params)

    def connect(self, user='app', dbname='app', password=None, autocommit=True, **extra):
        """A psycopg 3 connection over TCP (so pg_hba's password rules apply)."""
        return psycopg.connect(self.dsn(user, dbname, password, **extra), autocommit=autocommit)

    def superuser(self, dbname='postgres'):
        """An autocommit psycopg 3 connection as postgres over the unix socket (trust)."""
        return psycopg.connect(host=self.socket_dir, port=self.port, user='postgres',
                               dbname=dbname, autocommit=True)

    def sql(self, query, params=None, dbname='postgres'):
        """Run one statement as the superuser; its rows (a list of tuples, [] when none)."""
        with self.superuser(dbname) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def role_secret(self, role):
        """The stored password of a role (SCRAM-SHA-256$... or md5...), for userlist.txt."""
        rows = self.sql('SELECT rolpassword FROM pg_authid WHERE rolname = %s', (role,))
        if not rows:
            raise KeyError(role)
        return rows[0][0]

    def log(self, since=0):
        """The server log, from byte offset since (see log_size())."""
        try:
            with open(self.logfile, 'rb') as f:
                f.seek(since)
                return f.read().decode('utf-8', errors='replace')
        except FileNotFoundError:
            return ''

    def log_size(self):
        try:
            return os.path.getsize(self.logfile)
        except FileNotFoundError:
            return 0
