"""util: small helpers shared by the harness: ports, waiting, temp dirs, running as postgres."""

import os
import pwd
import resource
import shutil
import socket
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG_BIN = '/usr/lib/postgresql/15/bin'
PGBOUNCER_BIN = '/usr/sbin/pgbouncer'

# PostgreSQL and PgBouncer refuse to run as root; as root we run them as this user.
SERVICE_USER = 'postgres'


def is_root():
    return os.geteuid() == 0


def service_user():
    """The (uid, gid) that PostgreSQL/PgBouncer run as: postgres when we are root, else us."""
    if is_root():
        pw = pwd.getpwnam(SERVICE_USER)
        return pw.pw_uid, pw.pw_gid
    return os.getuid(), os.getgid()


def as_service_user(argv):
    """argv wrapped in `runuser -u postgres --` when we are root."""
    if is_root():
        return ['runuser', '-u', SERVICE_USER, '--'] + list(argv)
    return list(argv)


def make_tempdir(prefix, for_service=False):
    """A fresh directory under /tmp (short paths: unix socket names are limited to 107 bytes).

    With for_service, it is handed to the service user so PostgreSQL/PgBouncer can use it.
    """
    path = tempfile.mkdtemp(prefix=prefix, dir='/tmp')
    if for_service and is_root():
        uid, gid = service_user()
        os.chown(path, uid, gid)
    return path


def chown_tree(path):
    """Give a directory and what is in it to the service user (no-op unless root)."""
    if not is_root():
        return
    uid, gid = service_user()
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)


def free_port(preferred=None):
    """A TCP port on 127.0.0.1 that nobody listens on right now (preferred one if free)."""
    if preferred is not None and port_is_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(('127.0.0.1', port))
        except OSError:
            return False
        return True


def port_accepts(port, host='127.0.0.1', timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout, interval=0.05):
    """Poll predicate() until it is true (returns True) or timeout seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_for(cond, timeout=10.0, step=0.05):
    """wait_until with the tests' defaults: True once cond() holds, False after timeout s."""
    return wait_until(cond, timeout, interval=step)


def raise_nofile_limit():
    """Soft RLIMIT_NOFILE up to the hard limit: tests open many connections at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard


def read_text(path):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return f.read()
    except FileNotFoundError:
        return ''


class Background:
    """Run fn in a thread; .done tells whether it returned, .result/.error what it gave."""

    def __init__(self, fn):
        self.result = self.error = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn):
        try:
            self.result = fn()
        except Exception as e:  # noqa: BLE001 - reported to the test
            self.error = e
        finally:
            self.done.set()


def backends(pg, dbname='app', user='app'):
    """PostgreSQL client backends of the pool (not our own monitoring connection)."""
    rows = pg.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s "
                  "AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                  (dbname, user))
    return rows[0][0]


def wait_no_backends(pg, timeout=10):
    """Backends of earlier tests' poolers may still be exiting; wait them out."""
    assert wait_until(lambda: backends(pg) == 0, timeout), backends(pg)
