"""run_dev: `make run` - a throwaway PostgreSQL and ./pgtally in front of it, until Ctrl-C.

The pooler's config is etc/pgtally.ini with the ports and paths changed (written to a temp
dir); its log goes to this terminal. Everything is stopped and removed on exit.
"""

import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import util  # noqa: E402

DEFAULT_PORT = 6432


class Stop(Exception):
    pass


def on_signal(signum, frame):
    # One stop is enough: a second signal (timeout and make both pass one on) must not
    # interrupt the shutdown with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stop(signal.Signals(signum).name)


def banner(p, pg):
    def psql(dsn):
        return 'psql "%s"' % dsn

    name = os.path.basename(p.binary)
    lines = [
        '',
        '%s is running (pid %d), PostgreSQL 15 behind it on 127.0.0.1:%d.' % (
            name, p.pid, pg.port),
        '',
        '  pooled database:   ' + psql(p.dsn(user='app', dbname='app')),
        '  admin console:     ' + psql(p.dsn(user='admin', dbname=p.admin_db)) +
        '   (then SHOW POOLS;)',
        '  stats user:        ' + psql(p.dsn(user='stats', dbname=p.admin_db)),
        '  PostgreSQL direct: ' + psql(pg.dsn(user='app', dbname='app')),
        '',
        '  config: %s (from %s)' % (p.ini_path, os.path.relpath(p.template, util.REPO_ROOT)),
        '  reload: kill -HUP %d' % p.pid,
        '',
        'Press Ctrl-C to stop both.',
        '',
    ]
    print('\n'.join(lines), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--kind', choices=sorted(harness.KINDS), default='pgtally',
                    help='run pgtally (default) or Debian\'s pgbouncer with the same config')
    ap.add_argument('--config', default=os.path.join(util.REPO_ROOT, 'etc', 'pgtally.ini'),
                    help='template ini (default etc/pgtally.ini)')
    ap.add_argument('--userlist', default=os.path.join(util.REPO_ROOT, 'etc', 'userlist.txt'))
    ap.add_argument('--port', type=int, default=None,
                    help='pooler port (default 6432 when free, else any free one)')
    ap.add_argument('args', nargs='*', help='extra pooler arguments, e.g. -v (after --)')
    opts = ap.parse_args()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    util.raise_nofile_limit()

    pg = None
    p = None
    status = 0
    try:
        print('starting PostgreSQL 15 ...', flush=True)
        pg = harness.PgCluster().init()
        port = opts.port or util.free_port(preferred=DEFAULT_PORT)
        p = harness.Pooler(pg, kind=opts.kind, template=opts.config, userlist_file=opts.userlist,
                           echo=True, args=opts.args,
                           ini={'listen_addr': '127.0.0.1', 'listen_port': port,
                                'logfile': '', 'pidfile': ''})
        p.start()
        banner(p, pg)
        status = p.proc.wait()
        print('%s exited with status %d' % (os.path.basename(p.binary), status), flush=True)
    except Stop as why:
        print('\n%s: stopping' % why, flush=True)
    except harness.PoolerError as err:
        print(err, file=sys.stderr, flush=True)
        status = 1
    finally:
        # A second Ctrl-C must not leave PostgreSQL or temp dirs behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if p is not None:
            p.cleanup()
        if pg is not None:
            pg.destroy()
    return 0 if status is None else (status if status >= 0 else 128 - status)


if __name__ == '__main__':
    sys.exit(main())
