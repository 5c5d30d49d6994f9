"""run: `make bench` - pgtally against PgBouncer (and PostgreSQL direct) under pgbench, in one run.

Starts a throwaway PostgreSQL 15, pgtally and Debian's PgBouncer with equivalent configs
(transaction mode, one pool of 20, SCRAM), and measures per case: TPS, average and p99
latency, the pooler's CPU per transaction and RSS. "pgtally w2" is pgtally with workers = 2
(two event loops in threads), run for the select-only cases at -c 20 and -c 500 and for -C.
Then RSS per idle client, system calls per
transaction (strace), 10,000 clients on one pool of 20, and the fingerprint micro-benchmark
(build/bench/fp_bench). Prints markdown tables and, for a full run, puts them into
doc/performance.md between its result markers.

Settings come from the environment (or the options of the same name, see --help):
  QUICK=1               a ~2 minute smoke run (1 round x 3 s, scale 1, fewer idle clients)
  BENCH_ROUNDS=3        rounds per case; targets run interleaved within a round
  BENCH_SECONDS=8       pgbench -T per run
  BENCH_SCALE=10        pgbench -i -s
  BENCH_IDLE_CLIENTS    idle clients for the RSS test (5000; quick: 1000)
  BENCH_BIG_CLIENTS     clients of the many-clients test (10000; quick: 0 = skipped)
  BENCH_CASES           comma-separated case ids to run (default all; see --list)
  BENCH_DOC             1: write doc/performance.md, 0: don't (default: only for full runs)
"""

import argparse
import base64
import datetime
import glob
import hashlib
import hmac
import json
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCH_DIR))

import harness  # noqa: E402
from harness import util  # noqa: E402

REPO = util.REPO_ROOT
PGBENCH = os.path.join(util.PG_BIN, 'pgbench')
DJANGO_SCRIPT = os.path.join(BENCH_DIR, 'django_like.sql')
FP_BENCH = os.path.join(REPO, 'build', 'bench', 'fp_bench')
DOC = os.path.join(REPO, 'doc', 'performance.md')
OUT_DIR = os.path.join(REPO, 'build', 'bench')
BEGIN_MARK = '<!-- bench results: begin (written by test/bench/run.py) -->'
END_MARK = '<!-- bench results: end -->'

POOL_SIZE = 20
MAX_CLIENT_CONN = 12000  # room for the 10,000-client test; under the hard RLIMIT_NOFILE

# Two SCRAM roles. app has PostgreSQL's own secret (4,096 PBKDF2 iterations): the -C cases
# use it, because a login's full cost is what they measure. bench has a secret with few
# iterations: where logins are only the setup (500, 5,000, 10,000 clients) libpq's PBKDF2
# would otherwise cost ~15 ms of client CPU per login on this 2-core machine, minutes in all.
PASSWORDS = {'app': harness.PASSWORDS['app'], 'bench': 'bench_pw'}
BENCH_ITERATIONS = 16
CLK_TCK = os.sysconf('SC_CLK_TCK')
PAGE_KIB = os.sysconf('SC_PAGE_SIZE') // 1024

# PostgreSQL for benchmarking rather than for tests: the data set fits in shared_buffers and
# connection logging (the -C case) costs PostgreSQL, not the pooler, so it is off.
PG_SETTINGS = {
    'shared_buffers': "'256MB'",
    'log_connections': 'off',
    'log_disconnections': 'off',
}

TARGETS = ('direct', 'pgbouncer', 'pgtally')
# pgtally with two event loops (workers = 2): a contender for the cases that list it.
W2 = 'pgtally w2'
W2_WORKERS = 2
ALL_TARGETS = TARGETS + (W2,)
# The poolers a case may run against: a kind of harness.Pooler plus its extra settings.
POOLERS = {'pgbouncer': ('pgbouncer', {}), 'pgtally': ('pgtally', {}),
           W2: ('pgtally', {'workers': W2_WORKERS})}
NO_PREPARED = 'PgBouncer 1.18 has no prepared statements in transaction mode'
NO_DIRECT = 'more clients than PostgreSQL\'s max_connections (300)'


class Case:
    """One pgbench workload. na maps a target left out to the reason shown in its row;
    user is the role pgbench logs in as; userlist is the pooler set it runs on ('secret' or
    'plain'); direct_from names the case whose direct figures stand for this one (same
    workload, only the poolers differ)."""

    def __init__(self, cid, title, args, clients, targets=TARGETS, na=None, user='bench',
                 userlist='secret', direct_from=None):
        self.cid = cid
        self.user = user
        self.title = title
        self.args = args
        self.clients = clients
        self.targets = targets
        self.na = na or {}
        self.userlist = userlist
        self.direct_from = direct_from


def make_cases(scale):
    django = ['-f', DJANGO_SCRIPT, '-M', 'simple', '-s', str(scale)]
    plain_na = {'direct': 'same as the -C row above'}
    return [
        Case('s20', 'select-only, simple protocol, -c 20', ['-S', '-M', 'simple'], 20,
             ALL_TARGETS),
        Case('e20', 'select-only, extended protocol, -c 20', ['-S', '-M', 'extended'], 20,
             ALL_TARGETS),
        Case('p20', 'select-only, prepared, -c 20', ['-S', '-M', 'prepared'], 20,
             ('direct', 'pgtally'), {'pgbouncer': NO_PREPARED}),
        Case('dj20', 'Django-shaped: 1 list + 20 lookups in a transaction, -c 20', django, 20),
        Case('conn20', 'connection per transaction (-C), select-only, -c 20',
             ['-S', '-M', 'simple', '-C'], 20, ALL_TARGETS, user='app'),
        Case('connplain20', '-C as above, plaintext userlist (PBKDF2 in the pooler)',
             ['-S', '-M', 'simple', '-C'], 20, ('pgbouncer', 'pgtally', W2), plain_na,
             user='app', userlist='plain', direct_from='conn20'),
        Case('s500', 'select-only, simple protocol, -c 500', ['-S', '-M', 'simple'], 500,
             ('pgbouncer', 'pgtally', W2), {'direct': NO_DIRECT}),
        Case('e500', 'select-only, extended protocol, -c 500', ['-S', '-M', 'extended'], 500,
             ('pgbouncer', 'pgtally', W2), {'direct': NO_DIRECT}),
        Case('p500', 'select-only, prepared, -c 500', ['-S', '-M', 'prepared'], 500,
             ('pgtally',), {'direct': NO_DIRECT, 'pgbouncer': NO_PREPARED}),
    ]


# Workloads whose system calls are counted, per pooler, and by how much their transactions
# per client are divided (a Django-shaped transaction is 23 queries: fewer are enough).
SYSCALL_CASES = {'s20': 1, 'e20': 1, 'dj20': 10}
EPOLL_CTL_NOISE = 0.05


# ---------------------------------------------------------------------- /proc

def cpu_ticks(pid):
    """(utime, stime) of a whole process, all threads, in clock ticks."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]), int(fields[12])


def task_files(pid, name):
    """The text of /proc/<pid>/task/<tid>/<name> for each thread of pid."""
    for tid in os.listdir('/proc/%d/task' % pid):
        try:
            with open('/proc/%d/task/%s/%s' % (pid, tid, name)) as f:
                yield f.read()
        except OSError:
            continue  # a thread that ended meanwhile


def voluntary_switches(pid):
    """Voluntary context switches of a process, summed over its threads: each one a sleep,
    in epoll_wait for an event loop, and so one wake-up."""
    return sum(int(line.split()[1]) for text in task_files(pid, 'status')
               for line in text.splitlines() if line.startswith('voluntary_ctxt_switches:'))


def rss_kib(pid):
    with open('/proc/%d/statm' % pid) as f:
        return int(f.read().split()[1]) * PAGE_KIB


def anon_kib(pid):
    """RssAnon: the resident heap and stacks, without the shared libraries' pages."""
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('RssAnon:'):
                return int(line.split()[1])
    return 0


def n_fds(pid):
    try:
        return len(os.listdir('/proc/%d/fd' % pid))
    except OSError:
        return 0


# ---------------------------------------------------------------------- pgbench

def pgbench_env(user='bench'):
    return dict(os.environ, PGPASSWORD=PASSWORDS[user], PGAPPNAME='pgtally-bench')


def parse_pgbench(out):
    def num(pattern):
        m = re.search(pattern, out, re.M)
        return float(m.group(1)) if m else None
    return {
        'processed': int(num(r'^number of transactions actually processed: (\d+)') or 0),
        'failed': int(num(r'^number of failed transactions: (\d+)') or 0),
        'tps': num(r'^tps = ([\d.]+)'),
        'lat_avg_ms': num(r'^latency average = ([\d.]+) ms'),
        'conn_ms': num(r'^initial connection time = ([\d.]+) ms'),
    }


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def read_latencies(prefix):
    """Per-transaction latencies (microseconds) from pgbench --log files: column 3."""
    lat = []
    for path in glob.glob(prefix + '.*'):
        with open(path) as f:
            for line in f:
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[2].isdigit():
                    lat.append(int(parts[2]))
    lat.sort()
    return lat


def run_pgbench(host, port, args, clients, seconds=None, transactions=None, pid=None,
                log_latency=False, timeout=None, user='bench'):
    """One pgbench run against host:port; parsed output plus, when pid is the pooler's, its
    CPU (utime/stime deltas over the run) and peak RSS (polled every 0.2 s)."""
    argv = [PGBENCH, '-n', '-h', host, '-p', str(port), '-U', user, '-c', str(clients),
            '-j', str(min(2, clients))] + list(args)
    if seconds is not None:
        argv += ['-T', str(seconds)]
    if transactions is not None:
        argv += ['-t', str(transactions)]
    logdir = None
    if log_latency:
        logdir = tempfile.mkdtemp(prefix='pgtally-bench-log-', dir='/tmp')
        argv += ['--log', '--log-prefix', os.path.join(logdir, 'tx')]
    argv.append('app')
    if timeout is None:
        timeout = (seconds or 60) + 120 + clients * 0.05
    res = {'argv': argv}
    t_before = cpu_ticks(pid) if pid else None
    sw_before = voluntary_switches(pid) if pid else None
    rss_max = rss_kib(pid) if pid else None
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=pgbench_env(user), cwd='/tmp')
        try:
            while proc.poll() is None:
                if time.monotonic() - start > timeout:
                    proc.kill()
                    proc.wait()
                    break
                if pid:
                    rss_max = max(rss_max, rss_kib(pid))
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode('utf-8', 'replace')
        stderr = err.read().decode('utf-8', 'replace')
    res['wall_s'] = time.monotonic() - start
    res['rc'] = proc.returncode
    res.update(parse_pgbench(stdout))
    if pid:
        t_after = cpu_ticks(pid)
        res['utime_s'] = (t_after[0] - t_before[0]) / CLK_TCK
        res['stime_s'] = (t_after[1] - t_before[1]) / CLK_TCK
        res['wakeups'] = voluntary_switches(pid) - sw_before
        res['rss_kib'] = max(rss_max, rss_kib(pid))
    if logdir:
        lat = read_latencies(os.path.join(logdir, 'tx'))
        res['lat_samples'] = len(lat)
        res['lat_us'] = lat  # pooled with the other rounds' by pool_latencies()
        p99 = percentile(lat, 99)
        res['lat_p99_ms'] = p99 / 1000.0 if p99 is not None else None
        shutil.rmtree(logdir, ignore_errors=True)
    res['ok'] = proc.returncode == 0 and res['failed'] == 0 and res['processed'] > 0
    if not res['ok']:
        res['error'] = ('pgbench exit %s, %d failed transactions\n%s\n%s' % (
            proc.returncode, res['failed'], stdout[-1500:], stderr[-1500:])).strip()
    return res


# ---------------------------------------------------------------------- targets

class Target:
    def __init__(self, kind, host, port, pooler=None):
        self.kind = kind
        self.host = host
        self.port = port
        self.pooler = pooler

    @property
    def pid(self):
        return self.pooler.pid if self.pooler else None


def pooler_ini(extra=None):
    ini = {'default_pool_size': POOL_SIZE, 'max_client_conn': MAX_CLIENT_CONN}
    ini.update(extra or {})
    return ini


def scram_secret(password, iterations):
    """A SCRAM-SHA-256 secret in PostgreSQL's format (RFC 5802 keys, random salt)."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac('sha256', password.encode(), salt, iterations)
    client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b'Server Key', hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return 'SCRAM-SHA-256$%d:%s$%s:%s' % (iterations, b64(salt), b64(stored_key),
                                          b64(server_key))


def create_bench_role(pg):
    pg.sql("CREATE ROLE bench LOGIN PASSWORD '%s'" % scram_secret(PASSWORDS['bench'],
                                                                  BENCH_ITERATIONS))
    pg.sql('GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench', dbname='app')


def start_pooler(opts, pg, name, userlist_kind):
    """A pooler (a name of POOLERS) whose userlist holds the roles' SCRAM secrets as
    PostgreSQL stores them ('secret') or their plaintext passwords ('plain')."""
    if userlist_kind == 'secret':
        userlist = {u: pg.role_secret(u) for u in PASSWORDS}
    else:
        userlist = dict(PASSWORDS)
    kind, extra = POOLERS[name]
    binary = opts.pgtally_bin if kind == 'pgtally' else None
    p = harness.start_pooler(pg, kind=kind, ini=pooler_ini(extra), userlist=userlist,
                             binary=binary)
    return Target(name, p.host, p.port, p)


def stop_target(t):
    if t is not None and t.pooler is not None:
        t.pooler.cleanup()


# ---------------------------------------------------------------------- main cases

def run_cases(opts, pg, cases, log):
    """Every case: a warm-up per target, then opts.rounds rounds in which the targets take
    turns (the order rotates each round). Returns {case id: {target: [run results]}}."""
    direct = Target('direct', pg.host, pg.port)
    sets = {}
    results = {}
    try:
        for case in cases:
            if case.userlist not in sets:
                # pgbouncer and pgtally always (the system-call section uses them); the
                # other poolers only when a chosen case on this userlist runs against them.
                names = ['pgbouncer', 'pgtally'] + [
                    k for k in POOLERS if k not in ('pgbouncer', 'pgtally') and
                    any(k in c.targets for c in cases if c.userlist == case.userlist)]
                sets[case.userlist] = {}
                for k in names:
                    sets[case.userlist][k] = start_pooler(opts, pg, k, case.userlist)
            tmap = dict(sets[case.userlist], direct=direct)
            targets = [tmap[k] for k in case.targets]
            log('== %s: %s' % (case.cid, case.title))
            if opts.warmup > 0:
                for t in targets:
                    r = run_pgbench(t.host, t.port, case.args, case.clients,
                                    seconds=opts.warmup, user=case.user)
                    if not r['ok']:
                        log('   warm-up %s failed: %s' % (t.kind, r['error']))
            runs = {t.kind: [] for t in targets}
            for rnd in range(opts.rounds):
                order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
                for t in order:
                    r = run_pgbench(t.host, t.port, case.args, case.clients,
                                    seconds=opts.seconds, pid=t.pid, log_latency=True,
                                    user=case.user)
                    runs[t.kind].append(r)
                    if r['ok']:
                        cpu = ''
                        if t.pid:
                            cpu = ', %.1f us CPU/txn, RSS %.1f MiB' % (
                                (r['utime_s'] + r['stime_s']) * 1e6 / r['processed'],
                                r['rss_kib'] / 1024.0)
                        log('   round %d %-10s tps %9.1f  lat %.3f ms  p99 %s ms%s' % (
                            rnd + 1, t.kind, r['tps'], r['lat_avg_ms'],
                            fmt(r['lat_p99_ms'], '.3f'), cpu))
                    else:
                        log('   round %d %-10s FAILED: %s' % (rnd + 1, t.kind, r['error']))
            pool_latencies(runs)
            results[case.cid] = runs
            # The plaintext set is only for its own case: stop it once no later case needs it.
            for name in list(sets):
                if name != 'secret' and not any(c.userlist == name
                                                for c in cases[cases.index(case) + 1:]):
                    for t in sets.pop(name).values():
                        stop_target(t)
        return results, sets.get('secret')
    except BaseException:
        for s in sets.values():
            for t in s.values():
                stop_target(t)
        raise


def pool_latencies(runs):
    """The p99 of every transaction of a target's rounds together, kept in each round as
    case_p99_ms; the latencies themselves are dropped. A round of -C at 20 clients logs about
    1,100 transactions, so its own p99 is its 11th-slowest one and moved between 260 and
    800 ms from round to round; pooled, the tail has all the rounds' samples."""
    for rs in runs.values():
        pooled = sorted(x for r in rs if r['ok'] for x in r.get('lat_us', ()))
        p99 = percentile(pooled, 99)
        for r in rs:
            r.pop('lat_us', None)
            r['case_p99_ms'] = p99 / 1000.0 if p99 is not None else None


def summarize(runs):
    """Median of the rounds for each figure (CPU per transaction per round, then median), but
    for the p99 latency, taken over all the rounds' transactions (pool_latencies)."""
    ok = [r for r in runs if r['ok']]
    if not ok:
        return None
    s = {
        'rounds': len(ok),
        'failed_rounds': len(runs) - len(ok),
        'tps': statistics.median(r['tps'] for r in ok),
        'lat_avg_ms': statistics.median(r['lat_avg_ms'] for r in ok),
        'lat_p99_ms': ok[0].get('case_p99_ms'),
        'txns': sum(r['processed'] for r in ok),
    }
    if 'utime_s' in ok[0]:
        s['cpu_us'] = statistics.median((r['utime_s'] + r['stime_s']) * 1e6 / r['processed']
                                        for r in ok)
        s['user_us'] = statistics.median(r['utime_s'] * 1e6 / r['processed'] for r in ok)
        if all('wakeups' in r for r in ok):
            s['wakeups'] = statistics.median(r['wakeups'] / r['processed'] for r in ok)
        s['rss_mib'] = max(r['rss_kib'] for r in ok) / 1024.0
    return s


def fmt(value, spec, none='–'):
    return none if value is None else format(value, spec)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return '–'
    return '%.2f' % (a / b)


def main_table(cases, results):
    lines = [
        '| case | target | TPS | lat avg ms | lat p99 ms | CPU µs/txn | user µs/txn | '
        'wake-ups/txn | RSS MiB | TPS ÷ PgBouncer | TPS ÷ direct | CPU ÷ PgBouncer | '
        'TPS ÷ pgtally |',
        '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ]
    summaries = {cid: {k: summarize(v) for k, v in runs.items()}
                 for cid, runs in results.items()}
    for case in cases:
        if case.cid not in summaries:
            continue
        s = summaries[case.cid]
        direct = s.get('direct')
        if direct is None and case.direct_from:
            direct = summaries.get(case.direct_from, {}).get('direct')
        bouncer = s.get('pgbouncer')
        single = s.get('pgtally')  # one worker: what the workers = 2 row is compared with
        first = True
        for kind in ALL_TARGETS:
            # The case's name only on its first row: the table stays narrow enough to read.
            label = '%s `%s`' % (case.title, case.cid) if first else ''
            first = False
            if kind in case.na:
                lines.append('| %s | %s | n/a: %s | | | | | | | | | | |' % (label, kind,
                                                                       case.na[kind]))
                continue
            if kind not in s:
                continue
            r = s[kind]
            if r is None:
                lines.append('| %s | %s | failed (see the log) | | | | | | | | | | |' % (
                    label, kind))
                continue
            ours = kind in ('pgtally', W2)
            cells = [
                label, kind, '%.0f' % r['tps'], '%.3f' % r['lat_avg_ms'],
                fmt(r['lat_p99_ms'], '.3f'),
                fmt(r.get('cpu_us'), '.1f'), fmt(r.get('user_us'), '.1f'),
                fmt(r.get('wakeups'), '.2f'), fmt(r.get('rss_mib'), '.1f'),
                ratio(r['tps'], bouncer['tps']) if ours and bouncer else '',
                ratio(r['tps'], direct['tps']) if kind != 'direct' and direct else '',
                ratio(r.get('cpu_us'), bouncer.get('cpu_us')) if ours and bouncer else '',
                ratio(r['tps'], single['tps']) if kind == W2 and single else '']
            lines.append('| %s |' % ' | '.join(cells))
    return '\n'.join(lines), summaries


# ---------------------------------------------------------------------- system calls

def parse_strace_summary(path):
    """{syscall: calls} from an `strace -c` summary."""
    counts = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 5 or not re.match(r'^[\d.]+$', parts[0]) or parts[-1] == 'total':
                continue
            try:
                counts[parts[-1]] = int(parts[3])
            except ValueError:
                continue
    return counts


def strace_pgbench(t, args, clients, transactions, tmpdir):
    """Count the pooler's system calls (all threads) while pgbench runs clients x
    transactions; ({syscall: calls}, transactions processed) or raise."""
    out = os.path.join(tmpdir, 'strace-%s-%d.txt' % (t.kind, transactions))
    st = subprocess.Popen(['strace', '-c', '-f', '-p', str(t.pid), '-o', out],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    try:
        buf = b''
        deadline = time.monotonic() + 10
        while b'attached' not in buf and time.monotonic() < deadline:
            if st.poll() is not None:
                break
            ready, _, _ = select.select([st.stderr], [], [], 0.2)
            if ready:
                buf += os.read(st.stderr.fileno(), 4096)
        if b'attached' not in buf:
            raise RuntimeError('strace did not attach to %s: %s' % (
                t.kind, buf.decode('utf-8', 'replace')))
        time.sleep(0.2)  # let every thread be attached before the load starts
        r = run_pgbench(t.host, t.port, args, clients, transactions=transactions)
    finally:
        if st.poll() is None:
            st.send_signal(signal.SIGINT)
        try:
            st.wait(30)
        except subprocess.TimeoutExpired:
            st.kill()
            st.wait()
        st.stderr.close()
    if not r['ok']:
        raise RuntimeError(r['error'])
    return parse_strace_summary(out), r['processed']


def run_syscalls(opts, poolers, cases, log):
    """System calls per transaction, as the difference between a short and a long run, so
    that what happens once per run (connections, authentication, timers) cancels out."""
    rows = []
    tmpdir = tempfile.mkdtemp(prefix='pgtally-bench-strace-', dir='/tmp')
    by_id = {c.cid: c for c in cases}
    try:
        for cid in SYSCALL_CASES:
            case = by_id[cid]
            for kind in ('pgbouncer', 'pgtally'):
                t = poolers[kind]
                log('== syscalls %s %s' % (cid, kind))
                div = SYSCALL_CASES[cid]
                try:
                    c1, n1 = strace_pgbench(t, case.args, 20, opts.strace_txns[0] // div, tmpdir)
                    c2, n2 = strace_pgbench(t, case.args, 20, opts.strace_txns[1] // div, tmpdir)
                except (RuntimeError, OSError) as e:
                    log('   failed: %s' % e)
                    rows.append({'case': cid, 'target': kind, 'error': str(e)})
                    continue
                per = {k: (c2.get(k, 0) - c1.get(k, 0)) / float(n2 - n1)
                       for k in set(c1) | set(c2)}
                total = sum(per.values())
                rows.append({'case': cid, 'target': kind, 'per_txn': per, 'total': total,
                             'txns': (n1, n2)})
                log('   %.2f syscalls/txn, epoll_ctl %.3f/txn' % (total,
                                                                  per.get('epoll_ctl', 0.0)))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return rows


# Workloads whose user-space instructions are counted under callgrind, and the transactions
# per client of the short and the long run (a Django-shaped transaction is 23 queries).
INSTR_CASES = {'s20': (100, 600), 'e20': (100, 600), 'dj20': (10, 60)}
VALGRIND = shutil.which('valgrind') or '/usr/bin/valgrind'


def callgrind_totals(path):
    """{event: total} from the events: and totals: (or summary:) lines of a callgrind file."""
    events = None
    with open(path) as f:
        for line in f:
            if line.startswith('events:'):
                events = line.split()[1:]
            m = re.match(r'^(?:summary|totals):\s+([\d ]+)$', line)
            if m and events:
                return dict(zip(events, (int(x) for x in m.group(1).split())))
    raise RuntimeError('no totals in %s' % path)


CODE_LINE = 64  # bytes: x86-64's cache line

# callgrind's cache model, shrunk to 64 lines of 64 bytes (fully associative, LRU): between two
# uses of a line in one transaction, the transaction touches more than 64 others, so each
# distinct line a transaction touches counts about one miss. A count of the data a
# transaction reads and writes, like the code lines for code; in the pooler, after every
# system call, much of it has to come back from the next cache level.
CACHE_MODEL = ['--cache-sim=yes', '--D1=4096,64,64', '--I1=4096,64,64', '--LL=8388608,16,64']


def callgrind_hot_lines(path, times):
    """How many cache lines of code (any object: the pooler, libc, libevent...) hold an
    instruction that ran at least `times` times, from a callgrind file written with
    --dump-instr=yes: a count of the code a transaction runs through, where the instruction
    count says how much of it runs."""
    most = {}  # (object, line) -> the highest count of an instruction in it
    obj, pos, skip = None, 0, False
    with open(path) as f:
        for line in f:
            c = line[:1]
            if c and (c.isdigit() or c in '+-*'):
                parts = line.split()
                p = parts[0]
                if p.startswith('0x'):
                    pos = int(p, 16)
                elif c in '+-':
                    pos += int(p, 0)  # '+3' and '-0x10' alike
                elif p != '*':
                    pos = int(p)
                if skip:  # the cost line after calls= is the callee's, at the call
                    skip = False
                elif len(parts) > 2:
                    key = (obj, pos // CODE_LINE)
                    n = int(parts[2])
                    if n > most.get(key, 0):
                        most[key] = n
            elif line.startswith('calls='):
                skip = True
            elif line.startswith('ob='):
                # "ob=(3) /usr/lib/libc.so.6" first, "ob=(3)" after: the id names it
                v = line[3:].strip()
                obj = v.split(')')[0] if v.startswith('(') else v
    return sum(1 for n in most.values() if n >= times)


def callgrind_pgbench(opts, pg, kind, case, transactions, tmpdir):
    """A fresh pooler under callgrind while pgbench runs 20 clients x transactions: (its
    instructions and data-line misses (CACHE_MODEL) from start to exit, transactions
    processed, cache lines of code that ran at least once per transaction), or raise."""
    out = os.path.join(tmpdir, 'cg-%s-%s-%d.out' % (kind, case.cid, transactions))
    pkind, extra = POOLERS[kind]
    binary = opts.pgtally_bin if pkind == 'pgtally' else harness.pooler.KINDS[pkind][0]
    userlist = {u: pg.role_secret(u) for u in PASSWORDS}
    p = harness.start_pooler(pg, kind=pkind, ini=pooler_ini(extra), userlist=userlist,
                             binary=VALGRIND,
                             args=['--tool=callgrind', '--dump-instr=yes'] + CACHE_MODEL +
                             ['--callgrind-out-file=' + out, binary])
    try:
        r = run_pgbench(p.host, p.port, case.args, 20, transactions=transactions,
                        user=case.user, timeout=900)
        p.stop(timeout=120)
    finally:
        p.cleanup()
    if not r['ok']:
        raise RuntimeError(r['error'])
    t = callgrind_totals(out)
    return ((t['Ir'], t['D1mr'] + t['D1mw']), r['processed'],
            callgrind_hot_lines(out, r['processed']))


def run_instructions(opts, pg, cases, log):
    """User-space instructions per transaction: the pooler under callgrind for a short and a
    long run of one workload; the difference divided by the difference in transactions. What
    happens once per run (start, logins, shutdown) cancels out, and the count, unlike time,
    does not depend on what else the machine does."""
    rows = []
    tmpdir = tempfile.mkdtemp(prefix='pgtally-bench-cg-', dir='/tmp')
    os.chmod(tmpdir, 0o777)  # PgBouncer runs as postgres and writes its output here
    by_id = {c.cid: c for c in cases}
    try:
        for cid, (short, long_) in INSTR_CASES.items():
            for kind in ('pgbouncer', 'pgtally'):
                log('== instructions %s %s' % (cid, kind))
                try:
                    i1, n1, _ = callgrind_pgbench(opts, pg, kind, by_id[cid], short, tmpdir)
                    i2, n2, hot = callgrind_pgbench(opts, pg, kind, by_id[cid], long_, tmpdir)
                except (RuntimeError, OSError, harness.pooler.PoolerError) as e:
                    log('   failed: %s' % str(e).splitlines()[0])
                    rows.append({'case': cid, 'target': kind, 'error': str(e)})
                    continue
                per = (i2[0] - i1[0]) / float(n2 - n1)
                data = (i2[1] - i1[1]) / float(n2 - n1)
                rows.append({'case': cid, 'target': kind, 'per_txn': per, 'txns': (n1, n2),
                             'hot_lines': hot, 'data_lines': data})
                log('   %.0f instructions/txn, %d lines of code run every transaction, %.0f '
                    'data lines touched' % (per, hot, data))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return rows


def instructions_table(rows, cases):
    titles = {c.cid: c.title for c in cases}
    by = {(r['case'], r['target']): r for r in rows}
    lines = ['| case | instructions: pgbouncer | pgtally | ratio | '
             'code lines run per transaction: pgbouncer | pgtally | ratio | '
             'data lines touched per transaction: pgbouncer | pgtally | ratio |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for cid in INSTR_CASES:
        if cid not in titles:
            continue
        b, t = by.get((cid, 'pgbouncer'), {}), by.get((cid, 'pgtally'), {})
        vb, vt = b.get('per_txn'), t.get('per_txn')
        hb, ht = b.get('hot_lines'), t.get('hot_lines')
        db, dt = b.get('data_lines'), t.get('data_lines')
        lines.append('| %s `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            titles[cid], cid, fmt(vb, ',.0f', 'failed'), fmt(vt, ',.0f', 'failed'),
            ratio(vt, vb) if vb and vt else '', fmt(hb, 'd', ''), fmt(ht, 'd', ''),
            ratio(ht, hb) if hb and ht else '', fmt(db, ',.0f', ''), fmt(dt, ',.0f', ''),
            ratio(dt, db) if db and dt else ''))
    return '\n'.join(lines)


def syscall_table(rows, cases):
    titles = {c.cid: c.title for c in cases}
    lines = ['| case | target | syscalls/txn | epoll_ctl/txn | most frequent, per txn |',
             '|---|---|---:|---:|---|']
    prev = None
    for row in rows:
        label = '%s `%s`' % (titles[row['case']], row['case']) if row['case'] != prev else ''
        prev = row['case']
        if 'error' in row:
            lines.append('| %s | %s | failed | | %s |' % (label, row['target'],
                                                           row['error'].splitlines()[0]))
            continue
        top = sorted(((v, k) for k, v in row['per_txn'].items() if v >= 0.005), reverse=True)
        lines.append('| %s | %s | %.2f | %.3f | %s |' % (
            label, row['target'], row['total'], row['per_txn'].get('epoll_ctl', 0.0),
            ', '.join('%s %.2f' % (k, v) for v, k in top[:6])))
    verdicts = []
    for kind in ('pgbouncer', 'pgtally'):
        worst = [r['per_txn'].get('epoll_ctl', 0.0) for r in rows
                 if r['target'] == kind and 'per_txn' in r]
        if worst:
            verdicts.append('%s %s (at most %.3f per transaction)' % (
                kind, 'yes' if max(worst) >= EPOLL_CTL_NOISE else 'no', max(worst)))
    if verdicts:
        lines += ['', 'epoll_ctl on the steady-state path: %s. Values within ±%.2f are noise '
                  'of the two-run difference.' % ('; '.join(verdicts), EPOLL_CTL_NOISE)]
    return '\n'.join(lines)


# ---------------------------------------------------------------------- idle and many clients

def run_idle(opts, pg, log):
    """RSS per idle client: opts.idle_clients pgbench clients that log in (SCRAM) and then
    sleep without sending a query, against a fresh pooler whose pool was warmed first."""
    rows = []
    script = os.path.join(tempfile.mkdtemp(prefix='pgtally-bench-idle-', dir='/tmp'),
                          'idle.sql')
    with open(script, 'w') as f:
        # pgbench keeps \sleep in int microseconds: 900 s is about the longest it can do.
        f.write('\\sleep 900 s\n')
    n = opts.idle_clients
    for kind in ('pgbouncer', 'pgtally'):
        log('== idle clients: %d against %s' % (n, kind))
        t = start_pooler(opts, pg, kind, 'secret')
        proc = None
        try:
            r = run_pgbench(t.host, t.port, ['-S'], POOL_SIZE, seconds=1)
            if not r['ok']:
                raise RuntimeError(r['error'])
            time.sleep(0.5)
            base_rss, base_anon, base_fds = rss_kib(t.pid), anon_kib(t.pid), n_fds(t.pid)
            start = time.monotonic()
            proc = subprocess.Popen(
                [PGBENCH, '-n', '-h', t.host, '-p', str(t.port), '-U', 'bench', '-c', str(n),
                 '-j', '2', '-t', '1', '-f', script, 'app'],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env=pgbench_env(), cwd='/tmp')
            timeout = 60 + n * 0.05
            while n_fds(t.pid) < base_fds + n:
                if proc.poll() is not None:
                    raise RuntimeError('pgbench exited early: %s' % proc.stderr.read().decode(
                        'utf-8', 'replace')[-1000:])
                if time.monotonic() - start > timeout:
                    raise RuntimeError('only %d of %d clients connected in %.0f s' % (
                        n_fds(t.pid) - base_fds, n, timeout))
                time.sleep(0.2)
            connect_s = time.monotonic() - start
            # The last accepted socket may still be authenticating: let it finish.
            time.sleep(2)
            rss, anon = rss_kib(t.pid), anon_kib(t.pid)
            rows.append({'target': kind, 'clients': n, 'base_kib': base_rss, 'rss_kib': rss,
                         'base_anon_kib': base_anon, 'anon_kib': anon,
                         'per_client_kib': (anon - base_anon) / float(n),
                         'connect_s': connect_s})
            log('   RSS %.1f -> %.1f MiB, anonymous %.1f -> %.1f MiB: %.2f KiB per idle client '
                '(logins took %.1f s)' % (base_rss / 1024.0, rss / 1024.0, base_anon / 1024.0,
                                          anon / 1024.0, (anon - base_anon) / float(n),
                                          connect_s))
        except (RuntimeError, OSError) as e:
            log('   failed: %s' % e)
            rows.append({'target': kind, 'clients': n, 'error': str(e)})
        finally:
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                proc.stderr.close()
            stop_target(t)
    shutil.rmtree(os.path.dirname(script), ignore_errors=True)
    return rows


def idle_table(rows):
    lines = ['| target | idle clients | RSS before MiB | RSS with clients MiB | '
             'anonymous before MiB | anonymous with clients MiB | KiB per idle client | '
             'logins took s |',
             '|---|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        if 'error' in r:
            lines.append('| %s | %d | failed: %s | | | | | |' % (r['target'], r['clients'],
                                                                 r['error'].splitlines()[0]))
            continue
        lines.append('| %s | %d | %.1f | %.1f | %.1f | %.1f | %.2f | %.1f |' % (
            r['target'], r['clients'], r['base_kib'] / 1024.0, r['rss_kib'] / 1024.0,
            r['base_anon_kib'] / 1024.0, r['anon_kib'] / 1024.0, r['per_client_kib'],
            r['connect_s']))
    return '\n'.join(lines)


def run_big(opts, pg, log):
    """opts.big_clients concurrent clients on one pool of 20: pgbench connects them all
    before any starts, then each runs 3 select-only transactions; all must be answered."""
    rows = []
    n = opts.big_clients
    per_client = 3
    for kind in ('pgbouncer', 'pgtally'):
        log('== %d clients on a pool of %d: %s' % (n, POOL_SIZE, kind))
        t = start_pooler(opts, pg, kind, 'secret')
        try:
            r = run_pgbench(t.host, t.port, ['-S', '-M', 'simple'], n, transactions=per_client,
                            pid=t.pid, timeout=120 + n * 0.1)
            expected = n * per_client
            row = {'target': kind, 'clients': n, 'expected': expected,
                   'processed': r['processed'], 'failed': r['failed'], 'rc': r['rc'],
                   'conn_ms': r.get('conn_ms'), 'tps': r.get('tps'),
                   'rss_kib': r.get('rss_kib'), 'wall_s': r['wall_s'],
                   'all_answered': r['rc'] == 0 and r['failed'] == 0 and
                   r['processed'] == expected}
            if not row['all_answered']:
                row['error'] = r.get('error', 'processed %d of %d' % (r['processed'], expected))
            rows.append(row)
            log('   %d/%d transactions, %d failed, peak RSS %.1f MiB, %.0f s' % (
                r['processed'], expected, r['failed'], r['rss_kib'] / 1024.0, r['wall_s']))
            if 'error' in row:
                log('   ' + row['error'])
        finally:
            stop_target(t)
    return rows


def big_table(rows):
    lines = ['| target | clients | transactions answered | failed | all answered | '
             'connecting took s | TPS after connecting | peak RSS MiB |',
             '|---|---:|---:|---:|---|---:|---:|---:|']
    for r in rows:
        lines.append('| %s | %d | %d of %d | %d | %s | %s | %s | %s |' % (
            r['target'], r['clients'], r['processed'], r['expected'], r['failed'],
            'yes' if r['all_answered'] else 'NO', fmt(r['conn_ms'] and r['conn_ms'] / 1000.0,
                                                      '.1f'),
            fmt(r['tps'], '.0f'), fmt(r['rss_kib'] and r['rss_kib'] / 1024.0, '.1f')))
    return '\n'.join(lines)


# ---------------------------------------------------------------------- fingerprints

def run_fp_bench(opts, log):
    if not os.access(FP_BENCH, os.X_OK):
        log('== fp_bench: %s is not built, skipped' % os.path.relpath(FP_BENCH, REPO))
        return None
    log('== fp_bench')
    argv = [FP_BENCH] + (['0.25'] if opts.quick else [])
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        return 'fp_bench failed (exit %d): %s' % (r.returncode, r.stderr.strip()[-500:])
    return r.stdout.strip()


# ---------------------------------------------------------------------- report

def first_line(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return '?'


def machine(opts, pg):
    model = '?'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    mem = '?'
    try:
        with open('/proc/meminfo') as f:
            kib = int(f.readline().split()[1])
            mem = '%.0f GiB' % (kib / 1048576.0)
    except (OSError, ValueError, IndexError):
        pass
    commit = first_line(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD'])
    try:
        dirty = subprocess.run(['git', '-C', REPO, 'status', '--porcelain', '--untracked-files=no'],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        dirty = ''
    pgver = pg.sql('SHOW server_version')[0][0]
    return {
        'nproc': os.cpu_count(),
        'cpu': model,
        'memory': mem,
        'kernel': platform.release(),
        'pgtally': '%s (commit %s%s)' % (first_line([opts.pgtally_bin, '--version']),
                                         commit, ', with uncommitted changes' if dirty else ''),
        'pgbouncer': first_line([util.PGBOUNCER_BIN, '--version']),
        'postgresql': pgver,
        'pgbench': first_line([PGBENCH, '--version']),
    }


def command_line(opts):
    envs = ['%s=%s' % (k, os.environ[k]) for k in
            ('QUICK', 'BENCH_ROUNDS', 'BENCH_SECONDS', 'BENCH_SCALE', 'BENCH_IDLE_CLIENTS',
             'BENCH_BIG_CLIENTS', 'BENCH_CASES', 'BENCH_DOC') if os.environ.get(k)]
    if 'MAKELEVEL' in os.environ:
        return ' '.join(envs + ['make', 'bench'])
    return ' '.join(envs + ['/usr/bin/python3', 'test/bench/run.py'] + sys.argv[1:])


def report(opts, info, started, elapsed, tables):
    mode = 'quick smoke run (QUICK=1)' if opts.quick else 'full run'
    lines = [
        '_Written by `test/bench/run.py` on %s (%s, %.0f minutes)._' % (
            started.strftime('%Y-%m-%d %H:%M UTC'), mode, elapsed / 60.0),
        '',
        'Reproduce with `%s` from the repository root.' % command_line(opts),
        '',
        '- machine: %s CPUs (%s), %s RAM, Linux %s' % (info['nproc'], info['cpu'],
                                                     info['memory'], info['kernel']),
        '- %s; %s; PostgreSQL %s; %s' % (info['pgtally'], info['pgbouncer'],
                                          info['postgresql'], info['pgbench']),
        '- settings: %d round(s) x %d s per case and target, pgbench scale %d, -j 2, '
        'pool size %d, %d idle clients' % (opts.rounds, opts.seconds, opts.scale, POOL_SIZE,
                                            opts.idle_clients),
        '- targets: pgtally runs one event loop (workers = 1); "%s" is the same binary with '
        'workers = %d; "TPS ÷ pgtally" compares it with the one-worker row' % (W2, W2_WORKERS),
        '',
    ]
    for title, body in tables:
        lines += ['### ' + title, '', body, '']
    return '\n'.join(lines).rstrip() + '\n'


def write_doc(text):
    """Replace what is between the result markers of doc/performance.md (the prose around
    them is kept); a doc without markers gets them appended."""
    try:
        with open(DOC) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = '# Performance\n\n'
    block = BEGIN_MARK + '\n\n' + text + '\n' + END_MARK
    if BEGIN_MARK in doc and END_MARK in doc:
        head = doc.split(BEGIN_MARK, 1)[0]
        tail = doc.split(END_MARK, 1)[1]
        doc = head + block + tail
    else:
        doc = doc.rstrip() + '\n\n' + block + '\n'
    with open(DOC + '.tmp', 'w') as f:
        f.write(doc)
    os.replace(DOC + '.tmp', DOC)


# ---------------------------------------------------------------------- main

def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v not in (None, '') else default


def parse_args():
    quick = os.environ.get('QUICK', '') not in ('', '0')
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog='\n'.join(__doc__.splitlines()[1:]))
    ap.add_argument('--quick', action='store_true', default=quick)
    ap.add_argument('--rounds', type=int)
    ap.add_argument('--seconds', type=int)
    ap.add_argument('--scale', type=int)
    ap.add_argument('--idle-clients', type=int)
    ap.add_argument('--big-clients', type=int)
    ap.add_argument('--cases', help='comma-separated case ids')
    ap.add_argument('--doc', type=int, choices=(0, 1), help='write doc/performance.md')
    ap.add_argument('--list', action='store_true', help='list the cases and exit')
    opts = ap.parse_args()
    q = opts.quick

    def pick(value, env, full, quick_value):
        return value if value is not None else env_int(env, quick_value if q else full)
    opts.rounds = pick(opts.rounds, 'BENCH_ROUNDS', 3, 1)
    opts.seconds = pick(opts.seconds, 'BENCH_SECONDS', 8, 3)
    opts.scale = pick(opts.scale, 'BENCH_SCALE', 10, 1)
    opts.idle_clients = pick(opts.idle_clients, 'BENCH_IDLE_CLIENTS', 5000, 1000)
    opts.big_clients = pick(opts.big_clients, 'BENCH_BIG_CLIENTS', 10000, 0)
    opts.cases = opts.cases or os.environ.get('BENCH_CASES') or ''
    opts.warmup = 0 if q else 2
    opts.strace_txns = (50, 250) if q else (200, 1000)
    opts.instructions = env_int('BENCH_INSTRUCTIONS', 0 if q else 1)
    if opts.doc is None:
        opts.doc = env_int('BENCH_DOC', 0 if (q or opts.cases) else 1)
    return opts


def main():
    opts = parse_args()
    cases = make_cases(opts.scale)
    if opts.list:
        for c in cases:
            print('%-12s %s' % (c.cid, c.title))
        return 0
    if opts.cases:
        wanted = set(opts.cases.split(','))
        unknown = wanted - {c.cid for c in cases}
        if unknown:
            print('unknown case(s): %s (see --list)' % ', '.join(sorted(unknown)))
            return 2
        cases = [c for c in cases if c.cid in wanted]
        # A case borrowing direct figures needs the case that has them.
        for c in list(cases):
            if c.direct_from and c.direct_from not in wanted:
                c.direct_from = None
    if not os.path.exists(harness.pooler.PGTALLY_BIN):
        print('%s does not exist: run make first' % harness.pooler.PGTALLY_BIN)
        return 2
    t0 = time.monotonic()
    util.raise_nofile_limit()
    os.makedirs(OUT_DIR, exist_ok=True)
    # Our own copy: a `make` by someone else during the run must not change the binary under
    # test halfway, and perf can still resolve its symbols afterwards.
    bindir = tempfile.mkdtemp(prefix='pgtally-bench-bin-', dir='/tmp')
    opts.pgtally_bin = os.path.join(bindir, 'pgtally')
    shutil.copy2(harness.pooler.PGTALLY_BIN, opts.pgtally_bin)

    def log(msg):
        if msg.startswith('=='):
            msg = '[%5.0fs] %s' % (time.monotonic() - t0, msg)
        print(msg, flush=True)

    started = datetime.datetime.now(datetime.timezone.utc)
    errors = []
    pg = None
    poolers = None
    try:
        log('starting PostgreSQL 15 and loading pgbench data (scale %d) ...' % opts.scale)
        pg = harness.PgCluster(settings=PG_SETTINGS).init()
        init = subprocess.run([PGBENCH, '-i', '-q', '-s', str(opts.scale), '-h', pg.host,
                               '-p', str(pg.port), '-U', 'app', 'app'], env=pgbench_env('app'),
                              capture_output=True, text=True, timeout=1800)
        if init.returncode != 0:
            raise RuntimeError('pgbench -i failed:\n' + init.stderr)
        create_bench_role(pg)
        info = machine(opts, pg)

        results, poolers = run_cases(opts, pg, cases, log)
        table, summaries = main_table(cases, results)
        for cid, runs in results.items():
            for kind, rs in runs.items():
                errors += ['%s %s: %s' % (cid, kind, r['error']) for r in rs if not r['ok']]
        tables = [('Throughput, latency and pooler cost per case', table)]

        sys_rows = []
        chosen = {c.cid for c in cases}
        if poolers and all(cid in chosen for cid in SYSCALL_CASES):
            sys_rows = run_syscalls(opts, poolers, cases, log)
            tables.append(('System calls per transaction (strace -c -f, steady state)',
                           syscall_table(sys_rows, cases)))
            errors += ['syscalls %s %s: %s' % (r['case'], r['target'], r['error'])
                       for r in sys_rows if 'error' in r]
        if poolers:
            for t in poolers.values():
                stop_target(t)
            poolers = None

        instr_rows = []
        if opts.instructions and all(cid in chosen for cid in INSTR_CASES):
            instr_rows = run_instructions(opts, pg, cases, log)
            tables.append(('User-space instructions and code lines per transaction (callgrind)',
                           instructions_table(instr_rows, cases)))
            errors += ['instructions %s %s: %s' % (r['case'], r['target'],
                                                    r['error'].splitlines()[0])
                       for r in instr_rows if 'error' in r]

        idle_rows = []
        if opts.idle_clients > 0:
            idle_rows = run_idle(opts, pg, log)
            tables.append(('Memory per idle client', idle_table(idle_rows)))
            errors += ['idle %s: %s' % (r['target'], r['error']) for r in idle_rows
                       if 'error' in r]
        big_rows = []
        if opts.big_clients > 0:
            big_rows = run_big(opts, pg, log)
            tables.append(('{:,} concurrent clients on one pool of {}'.format(opts.big_clients,
                                                                             POOL_SIZE),
                           big_table(big_rows)))
            errors += ['%d clients %s: %s' % (r['clients'], r['target'], r['error'])
                       for r in big_rows if 'error' in r]

        fp = run_fp_bench(opts, log)
        if fp is not None:
            tables.append(('Fingerprint micro-benchmark (build/bench/fp_bench)', fp))

        text = report(opts, info, started, time.monotonic() - t0, tables)
        with open(os.path.join(OUT_DIR, 'performance.md'), 'w') as f:
            f.write(text)
        with open(os.path.join(OUT_DIR, 'results.json'), 'w') as f:
            json.dump({'options': {k: v for k, v in vars(opts).items()}, 'machine': info,
                       'runs': results, 'summaries': summaries, 'syscalls': sys_rows,
                       'instructions': instr_rows,
                       'idle': idle_rows, 'big': big_rows}, f, indent=1, default=str)
        print('\n' + text)
        where = ['build/bench/performance.md', 'build/bench/results.json']
        if opts.doc:
            write_doc(text)
            where.insert(0, 'doc/performance.md')
        print('written to %s' % ', '.join(where))
    finally:
        if poolers:
            for t in poolers.values():
                stop_target(t)
        if pg is not None:
            pg.destroy()
        shutil.rmtree(bindir, ignore_errors=True)
    if errors:
        print('\nmake bench: %d problem(s):' % len(errors))
        for e in errors:
            print('  - ' + e.splitlines()[0])
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
