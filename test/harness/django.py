"""django: runs the test Django project in test/django_app for the N+1 tests: in this process
(schema, seed data, in-process requests) or as a WSGI server over real HTTP in a subprocess.

Import it as `from harness import django as djangoh` (it is not re-exported by harness)."""

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from . import util

TEST_DIR = os.path.join(util.REPO_ROOT, 'test')
SETTINGS_MODULE = 'django_app.settings'
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
REQUEST_TIMEOUT = 20.0


def app_env(db_port, db_host='127.0.0.1', conn_max_age=0, atomic=False, traceparent=False):
    """The environment variables django_app/settings.py reads (conn_max_age None: forever)."""
    return {
        'DJANGO_SETTINGS_MODULE': SETTINGS_MODULE,
        'PGT_DJANGO_DB_HOST': str(db_host),
        'PGT_DJANGO_DB_PORT': str(db_port),
        'PGT_DJANGO_CONN_MAX_AGE': 'none' if conn_max_age is None else str(conn_max_age),
        'PGT_DJANGO_ATOMIC': '1' if atomic else '0',
        'PGT_DJANGO_TRACEPARENT': '1' if traceparent else '0',
    }


def setup_in_process(db_port, db_host='127.0.0.1'):
    """Configure Django in this process against db_host:db_port (once per process: Django's
    settings are global, so a second call with another address raises)."""
    env = app_env(db_port, db_host)
    import django
    from django.conf import settings
    if settings.configured:
        db = settings.DATABASES['default']
        if (db['HOST'], str(db['PORT'])) != (str(db_host), str(db_port)):
            raise RuntimeError('Django is already set up for %s:%s' % (db['HOST'], db['PORT']))
        return
    if TEST_DIR not in sys.path:
        sys.path.insert(0, TEST_DIR)
    os.environ.update(env)
    django.setup()


def reset_and_seed():
    """Recreate the shop tables and load the seed data (after setup_in_process)."""
    from django.db import connections
    from django_app.shop import seed
    seed.reset_and_seed()
    connections.close_all()


class DjangoServer:
    """python3 -m django_app.serve in a subprocess: port, url(path), get(path), stop().
    threaded=False serves all requests on one thread, so persistent connections are reused."""

    def __init__(self, env, threaded=True):
        self.env = dict(os.environ, **env)
        self.env['PYTHONPATH'] = os.pathsep.join(
            [TEST_DIR] + [p for p in [os.environ.get('PYTHONPATH')] if p])
        self.threaded = threaded
        self.tmpdir = util.make_tempdir('pgtally-django-')
        self.stderr_path = os.path.join(self.tmpdir, 'stderr.log')
        self.proc = None
        self.port = None

    def start(self, timeout=START_TIMEOUT):
        argv = [sys.executable, '-m', 'django_app.serve', '--port', '0']
        if not self.threaded:
            argv.append('--single-thread')
        with open(self.stderr_path, 'ab') as err:
            self.proc = subprocess.Popen(argv, cwd=TEST_DIR, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, start_new_session=True)
        line = self._read_line(timeout)
        if not line.startswith('listening on '):
            self.stop()
            raise RuntimeError('the Django server did not start (said %r)\n%s' % (
                line, self.log()))
        self.port = int(line.rsplit(':', 1)[1])
        return self

    def _read_line(self, timeout):
        deadline = time.monotonic() + timeout
        out = b''
        fd = self.proc.stdout.fileno()
        while not out.endswith(b'\n'):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 256)
            if not chunk:
                break
            out += chunk
        return out.decode('utf-8', errors='replace').strip()

    def url(self, path):
        return 'http://127.0.0.1:%d/%s' % (self.port, path.lstrip('/'))

    def get(self, path):
        """GET path; (status, body as parsed JSON or text). Raises with the server's stderr
        when the response is not 200."""
        try:
            with urllib.request.urlopen(self.url(path), timeout=REQUEST_TIMEOUT) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            raise AssertionError('GET /%s: HTTP %d\n%s\n--- server stderr ---\n%s' % (
                path, e.code, e.read().decode('utf-8', 'replace'), self.log())) from None
        text = body.decode('utf-8', errors='replace')
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def log(self):
        return util.read_text(self.stderr_path)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM (the server closes its database connections), SIGKILL after timeout."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        return self.proc.returncode

    def cleanup(self):
        self.stop()
        util.remove_tree(self.tmpdir)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
