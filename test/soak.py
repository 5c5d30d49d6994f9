"""soak: pgbench through pgtally for a long while (10 minutes by default) with backends and
clients killed at random; pgtally must not crash and its memory must stay flat.

Not part of `make check` (too long). Run it by hand:

    /usr/bin/python3 test/soak.py [--minutes 10] [--binary ./pgtally] [--rate 400]

It starts a throwaway PostgreSQL and pgtally (test/harness), loads pgbench's tables, then runs
pgbench in rounds of --round seconds. Meanwhile a killer terminates a random pooled backend
(pg_terminate_backend) every few seconds, and a few extra clients of our own vanish without a
Terminate, at random points of their transactions (mid-transaction, mid-COPY, mid-pipeline).
pgbench clients whose backend dies abort and are counted; the next round starts them again.
pgtally's RSS is sampled every few seconds. At the end it prints a summary (pasted into
doc/reliability.md) and exits 1 when pgtally crashed, an invariant failed, RSS grew by 5%
or more after the warm-up, or pgtally did not exit cleanly on SIGINT at the end. With the
sanitizer build (--binary build-asan/pgtally) any report in its log fails the run too: leaks
are reported only then, at exit. PGTALLY_WORKERS=2 in the environment runs pgtally with two
event loops, as it does for make check.
"""

import argparse
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import rawpg  # noqa: E402

PGBENCH = '/usr/lib/postgresql/15/bin/pgbench'


def rss_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def app_backends(pg):
    return [r[0] for r in pg.sql(
        "SELECT pid FROM pg_stat_activity WHERE datname = 'app' AND usename = 'app' "
        "AND backend_type = 'client backend'")]


class Soak:
    def __init__(self, args):
        self.args = args
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.stats = dict(rounds=0, pgbench_tx=0, pgbench_aborted_clients=0,
                          backends_killed=0, clients_vanished=0, vanisher_foreign_rows=0)
        self.rss = []  # (seconds since start, kB)
        self.rnd = random.Random(args.seed)

    def bump(self, key, n=1):
        with self.lock:
            self.stats[key] += n

    # ------------------------------------------------------------------ load

    def pgbench_rounds(self, p):
        env = dict(os.environ, PGPASSWORD='app_pw')
        modes = ['extended', 'simple', 'prepared']
        i = 0
        while not self.stop.is_set():
            argv = [PGBENCH, '-h', p.host, '-p', str(p.port), '-U', 'app', '-n',
                    '-c', str(self.args.clients), '-j', '2', '-T', str(self.args.round),
                    '-M', modes[i % len(modes)], '-R', str(self.args.rate), 'app']
            i += 1
            r = subprocess.run(argv, env=env, capture_output=True, text=True,
                               timeout=self.args.round + 120)
            out = r.stdout + r.stderr
            m = re.search(r'number of transactions actually processed: (\d+)', out)
            self.bump('pgbench_tx', int(m.group(1)) if m else 0)
            self.bump('pgbench_aborted_clients', len(re.findall(r'client \d+ aborted', out)))
            self.bump('rounds')

    def killer(self, pg):
        while not self.stop.wait(self.rnd.uniform(1.0, 4.0)):
            try:
                pids = app_backends(pg)
                if pids:
                    pg.sql('SELECT pg_terminate_backend(%s)', (self.rnd.choice(pids),))
                    self.bump('backends_killed')
            except Exception as e:  # noqa: BLE001 - reported, and the soak goes on
                print('killer: %s' % e, file=sys.stderr, flush=True)

    def vanisher(self, p, n):
        rnd = random.Random(self.args.seed + n)
        parse = rawpg.message('P', b'\0SELECT 1\0\0\0')
        bind_exec = rawpg.message('B', b'\0\0\0\0\0\0\0\0') + rawpg.message('E', b'\0\0\0\0\0')
        while not self.stop.is_set():
            try:
                c = rawpg.Conn(p.host, p.port)
                c.send(rawpg.startup_packet({'user': 'app', 'database': 'app'}))
                c.read_until('R')  # SCRAM: leave during authentication at times
                if rnd.random() < 0.2:
                    self._abort(c)
                    continue
                c.close()
                conn = p.connect()
                tag = rnd.randrange(1, 1 << 30)
                if conn.execute('SELECT %s::int', (tag,)).fetchone() != (tag,):
                    self.bump('vanisher_foreign_rows')
                conn.execute('BEGIN')
                conn.execute('SELECT aid FROM pgbench_accounts WHERE aid = %s',
                             (rnd.randrange(1, 1000),))
                what = rnd.choice(['txn', 'copy', 'pipeline'])
                sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
                if what == 'copy':
                    sock.sendall(rawpg.query('COPY pgbench_history FROM STDIN') +
                                 rawpg.message('d', b'1\t1\t1\t1\tnow\t\n') * 50)
                elif what == 'pipeline':
                    sock.sendall(parse + bind_exec * 200)
                time.sleep(rnd.uniform(0, 0.2))
                # Gone without a Terminate: shut the connection under libpq's feet (closing
                # its fd behind its back could close another thread's reused fd number).
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - its socket is shut on purpose
                    pass
                self.bump('clients_vanished')
            except Exception:  # noqa: BLE001 - faults make some of these fail; keep going
                time.sleep(0.1)

    @staticmethod
    def _abort(c):
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        c.close()

    def sampler(self, p, t0):
        while not self.stop.wait(5):
            if not p.is_running():
                return
            self.rss.append((time.time() - t0, rss_kb(p.pid)))

    # ------------------------------------------------------------------ run

    def run(self):
        args = self.args
        pg = harness.PgCluster()
        p = None
        failures = []
        try:
            pg.init()
            env = dict(os.environ, PGPASSWORD='app_pw')
            subprocess.run([PGBENCH, '-i', '-s', '5', '-q', '-h', pg.host, '-p', str(pg.port),
                            '-U', 'app', 'app'], check=True, env=env, capture_output=True)
            p = harness.start_pooler(pg, binary=os.path.abspath(args.binary), ini={
                'default_pool_size': 10, 'max_client_conn': 1000, 'server_login_retry': 0.5,
                'query_wait_timeout': 30, 'max_prepared_statements': 100})
            t0 = time.time()
            threads = [threading.Thread(target=self.pgbench_rounds, args=(p,)),
                       threading.Thread(target=self.killer, args=(pg,)),
                       threading.Thread(target=self.sampler, args=(p, t0))]
            threads += [threading.Thread(target=self.vanisher, args=(p, i)) for i in range(3)]
            for t in threads:
                t.daemon = True
                t.start()
            deadline = t0 + args.minutes * 60
            while time.time() < deadline and p.is_running():
                time.sleep(1)
            self.stop.set()
            for t in threads:
                t.join(args.round + 150)

            if not p.is_running():
                failures.append('pgtally died (exit status %s)' % p.proc.poll())
            else:
                # Quiet now: no server left in a transaction, SHOW POOLS = PostgreSQL.
                time.sleep(3)
                rows = [r for r in p.admin('SHOW POOLS') if r['database'] == 'app']
                sv = sum(r[k] for r in rows for k in ('sv_active', 'sv_idle', 'sv_used',
                                                        'sv_tested', 'sv_login'))
                cl = sum(r['cl_active'] + r['cl_waiting'] for r in rows)
                backends = len(app_backends(pg))
                in_txn = pg.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' "
                                "AND state LIKE 'idle in transaction%%'")[0][0]
                if sv != backends or cl != 0 or in_txn:
                    failures.append('after the run: sv=%d backends=%d clients=%d in_txn=%d'
                                    % (sv, backends, cl, in_txn))
            if self.stats['vanisher_foreign_rows']:
                failures.append('clients received rows meant for others')
            warm = [kb for t, kb in self.rss if t >= args.warmup]
            growth = None
            if len(warm) >= 2:
                base = warm[0]
                growth = (max(warm) - base) * 100.0 / base
                if growth >= 5.0:
                    failures.append('RSS grew %.1f%% after warm-up' % growth)
            # How it ends: SIGINT must stop it cleanly, and a sanitizer build reports leaks
            # only now, at exit, into the log that cleanup() removes.
            alive = p.is_running()
            status = p.stop()
            if alive and status != 0:
                failures.append('exit status %s after SIGINT' % status)
            reports = [line for line in p.log().splitlines()
                       if 'Sanitizer' in line or 'runtime error:' in line]
            if reports:
                failures.append('sanitizer: %s' % reports[0])
            self.report(growth, failures, alive)
        finally:
            if p is not None:
                p.cleanup()
            pg.destroy()
        return 1 if failures else 0

    def report(self, growth, failures, alive):
        args = self.args
        warm = [kb for t, kb in self.rss if t >= args.warmup]
        lines = [
            'soak: %g min, pgbench -c %d -R %d in %d s rounds, binary %s, workers %s' % (
                args.minutes, args.clients, args.rate, args.round, args.binary,
                os.environ.get('PGTALLY_WORKERS') or 1),
            '  rounds %(rounds)d, pgbench transactions %(pgbench_tx)d, pgbench clients '
            'aborted by kills %(pgbench_aborted_clients)d' % self.stats,
            '  backends killed %(backends_killed)d, clients vanished %(clients_vanished)d, '
            'foreign rows %(vanisher_foreign_rows)d' % self.stats,
            '  RSS kB: first %s, after warm-up %s, max after warm-up %s, last %s' % (
                self.rss[0][1] if self.rss else '-', warm[0] if warm else '-',
                max(warm) if warm else '-', self.rss[-1][1] if self.rss else '-'),
            '  RSS growth after %d s warm-up: %s' % (
                args.warmup, '%.2f%%' % growth if growth is not None else '-'),
            '  pgtally alive at the end: %s, exit on SIGINT clean: %s' % (
                'yes' if alive else 'NO', 'no' if any(
                    f.startswith(('exit status', 'sanitizer')) for f in failures) else 'yes'),
            '  result: %s' % ('PASS' if not failures else 'FAIL: ' + '; '.join(failures)),
        ]
        print('\n'.join(lines), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--minutes', type=float, default=10)
    ap.add_argument('--warmup', type=float, default=60, help='seconds before RSS is compared')
    ap.add_argument('--round', type=int, default=30, help='seconds per pgbench run')
    ap.add_argument('--clients', type=int, default=40)
    ap.add_argument('--rate', type=int, default=400, help='pgbench -R: transactions/s')
    ap.add_argument('--binary', default=harness.pooler.PGTALLY_BIN)
    ap.add_argument('--seed', type=int, default=1)
    sys.exit(Soak(ap.parse_args()).run())


if __name__ == '__main__':
    main()
