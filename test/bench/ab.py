"""ab: two poolers (or two pgtally builds) on one bench case, in alternating rounds, CPU exact.

The CPU figures of `make bench` come from /proc/<pid>/stat ticks and 3-round medians, which
move by +-10% between runs of one binary on a shared machine. For a verdict on a change, this
script runs the case's pgbench against A and B in turn (A B, B A, A B, ...), reads each
pooler's CPU from /proc/<pid>/task/*/schedstat (nanoseconds on CPU, exact) around every run,
and prints the median of the per-round ratios A/B with every round, so the spread shows, and
each pooler's wake-ups per transaction (voluntary context switches of all its threads).

This machine's speed moves from minute to minute (other guests on the host: steal time, shared
caches), and one round's pooler CPU moves with it by 10-30%. PostgreSQL's backends do the same
work per transaction behind either pooler, and they run in the same seconds on the same cores,
so the script also reads their CPU and prints the ratio of (pooler CPU / PostgreSQL CPU) of A
to that of B: the host's drift cancels out of it, and rounds agree to a few percent.

    test/bench/ab.py s20                       # pgtally against PgBouncer, 8 rounds x 5 s
    test/bench/ab.py dj20 --rounds 12 --seconds 8
    test/bench/ab.py e20 --b old --old-binary /tmp/old/pgtally   # this build against another
    test/bench/ab.py e20 --rounds 20 --latency  # also p50/p99 over all rounds' transactions
    test/bench/ab.py conn20 --user bench --rounds 20   # -C without pgbench's 4096 PBKDF2 rounds

Each median ratio comes with a 95% confidence interval that assumes nothing about the
distribution of the rounds (order statistics of the per-round ratios; binomial). When the
interval holds 1.0, the rounds cannot tell A from B; with 8 rounds it spans the 1st to 8th
ratio, so use 16 or more rounds for a verdict.

A and B are pgtally, pgbouncer, old (pgtally built elsewhere: --old-binary) or w2 (this
pgtally with workers = 2). The case ids are
those of run.py (--list there); the data set is pgbench scale 1. User and system time are the
kernel's tick split, rough at a few microseconds per transaction. With --perf, perf samples
each pooler at 10 kHz during its runs (cpu-clock) and the user/kernel split comes from where
the samples fell: the user figure is then good to about 0.1 us on pgbench -S (the sampling
costs both poolers alike, a few percent).
"""

import argparse
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402


def cpu(pid):
    """(ns on CPU of every thread of pid, user ticks, system ticks)."""
    ns = sum(int(text.split()[0]) for text in run.task_files(pid, 'schedstat'))
    return (ns,) + run.cpu_ticks(pid)


def median_ci(values, level=0.95):
    """(low, high): a distribution-free confidence interval for the median of values, from
    their order statistics: the widest symmetric pair (k-th smallest, k-th largest) whose
    chance of straddling the true median is at least level. None with fewer than 6 values."""
    v = sorted(values)
    n = len(v)
    below = 0.0  # P(at most j of n values fall below the median), j = k - 1
    for k in range(1, n // 2 + 1):
        below += math.comb(n, k - 1) / 2.0 ** n
        if 1 - 2 * below < level:
            return (v[k - 2], v[n - k + 1]) if k >= 2 else None
    return None


def describe_ratios(label, a, b, ratios):
    ci = median_ci(ratios)
    return '%s %s / %s: median %.3f, 95%% CI %s; rounds %s' % (
        label, a, b, statistics.median(ratios),
        '%.3f-%.3f' % ci if ci else 'n/a (too few rounds)', ' '.join('%.2f' % x for x in ratios))


def postgres_ns():
    """ns on CPU of every PostgreSQL process on the machine (the bench's cluster is the only one)."""
    ns = 0
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/comm' % pid) as f:
                if f.read().strip() != 'postgres':
                    continue
            with open('/proc/%s/schedstat' % pid) as f:
                ns += int(f.read().split()[0])
        except OSError:
            continue  # a backend that ended meanwhile
    return ns


PERF = shutil.which('perf') or '/usr/bin/perf'
KERNEL_IP = 0xffff800000000000  # x86-64: kernel addresses are the upper half


def perf_start(pid, out):
    return subprocess.Popen([PERF, 'record', '-q', '-e', 'cpu-clock', '-F', '10000', '-p',
                             str(pid), '-o', out], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def perf_user_share(proc, out):
    """Stop perf record; the share of its samples that fell in user space."""
    proc.send_signal(signal.SIGINT)
    proc.wait()
    ips = subprocess.run([PERF, 'script', '-i', out, '-F', 'ip'], capture_output=True,
                         text=True).stdout.split()
    os.unlink(out)
    n = len(ips)
    return sum(1 for ip in ips if int(ip, 16) < KERNEL_IP) / n if n else float('nan')


# old: pgtally built elsewhere (--old-binary); w2: this pgtally with workers = 2.
TARGETS = ('pgtally', 'pgbouncer', 'old', 'w2')


def start(name, opts, pg, case):
    kind = {'old': 'pgtally', 'w2': run.W2}.get(name, name)
    binary = opts.old_binary if name == 'old' else run.harness.pooler.PGTALLY_BIN
    return run.start_pooler(types.SimpleNamespace(pgtally_bin=binary), pg, kind,
                            case.userlist or 'secret')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('case')
    ap.add_argument('--a', default='pgtally', choices=TARGETS)
    ap.add_argument('--b', default='pgbouncer', choices=TARGETS)
    ap.add_argument('--old-binary')
    ap.add_argument('--rounds', type=int, default=8)
    ap.add_argument('--seconds', type=int, default=5)
    ap.add_argument('--perf', action='store_true',
                    help='user/kernel split from perf samples instead of clock ticks')
    ap.add_argument('--latency', action='store_true',
                    help='log every transaction; p50 and p99 over all rounds of each target')
    ap.add_argument('--user', choices=sorted(run.PASSWORDS),
                    help="the role pgbench logs in as instead of the case's: bench's SCRAM "
                    'secret has %d iterations, so -C rounds run about 20x the logins of '
                    "app's 4096 (pgbench's own PBKDF2 no longer sets the pace) and the pooler "
                    'does the same work per login' % run.BENCH_ITERATIONS)
    opts = ap.parse_args()
    cases = {c.cid: c for c in run.make_cases(1)}
    if opts.case not in cases or opts.a == opts.b or \
            ('old' in (opts.a, opts.b) and not opts.old_binary):
        ap.error('a case of run.py --list, two different targets, --old-binary with old')
    case = cases[opts.case]
    case.user = opts.user or case.user
    names = (opts.a, opts.b)
    pg = run.harness.PgCluster(settings=run.PG_SETTINGS).init()
    targets = {}
    try:
        subprocess.run([run.PGBENCH, '-i', '-q', '-s', '1', '-h', pg.host, '-p', str(pg.port),
                        '-U', 'app', 'app'], env=run.pgbench_env('app'), check=True,
                       capture_output=True)
        run.create_bench_role(pg)
        for name in names:
            targets[name] = start(name, opts, pg, case)
        for name in names:  # warm the pools
            t = targets[name]
            run.run_pgbench(t.host, t.port, case.args, case.clients, seconds=2, user=case.user)
        per = {name: [] for name in names}
        lat = {name: [] for name in names}
        for r in range(opts.rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                t = targets[name]
                pp = perf_start(t.pid, '/tmp/pgtally-ab-%d.perf' % os.getpid()) \
                    if opts.perf else None
                c0, g0, w0 = cpu(t.pid), postgres_ns(), run.voluntary_switches(t.pid)
                res = run.run_pgbench(t.host, t.port, case.args, case.clients,
                                      seconds=opts.seconds, user=case.user,
                                      log_latency=opts.latency)
                lat[name] += res.get('lat_us', ())
                c1, g1, w1 = cpu(t.pid), postgres_ns(), run.voluntary_switches(t.pid)
                share = perf_user_share(pp, '/tmp/pgtally-ab-%d.perf' % os.getpid()) \
                    if pp else None
                if not res['ok'] or not res['processed']:
                    raise RuntimeError('%s: %s' % (name, res.get('error')))
                n = res['processed']
                tick_us = 1e6 / run.CLK_TCK
                cpu_us = (c1[0] - c0[0]) / 1e3 / n
                if share is not None:
                    user_us, sys_us = cpu_us * share, cpu_us * (1 - share)
                else:
                    user_us = (c1[1] - c0[1]) * tick_us / n
                    sys_us = (c1[2] - c0[2]) * tick_us / n
                pg_us = (g1 - g0) / 1e3 / n
                per[name].append((cpu_us, user_us, sys_us, res['tps'], cpu_us / pg_us,
                                  res.get('lat_p99_ms'), (w1 - w0) / n))
        for name in names:
            rows = per[name]
            print('%-10s CPU us/txn %s | median %.1f, user %.2f, system %.2f, TPS %.0f, '
                  'per PostgreSQL CPU %.3f, wake-ups/txn %.3f' % (
                      name, ' '.join('%.1f' % x[0] for x in rows),
                      statistics.median(x[0] for x in rows), statistics.median(x[1] for x in rows),
                      statistics.median(x[2] for x in rows), statistics.median(x[3] for x in rows),
                      statistics.median(x[4] for x in rows), statistics.median(x[6] for x in rows)))
        labels = [('CPU', 0), ('CPU per PostgreSQL CPU', 4), ('TPS', 3)]
        if opts.perf:
            labels.append(('user CPU', 1))
        if opts.latency:
            labels.append(('round p99', 5))
        for label, i in labels:
            ratios = [a[i] / b[i] for a, b in zip(per[names[0]], per[names[1]])]
            print(describe_ratios(label, names[0], names[1], ratios))
        for name in names if opts.latency else ():
            pooled = sorted(lat[name])
            print('%-10s latency over %d transactions: p50 %.3f ms, p99 %.3f ms' % (
                name, len(pooled), run.percentile(pooled, 50) / 1e3,
                run.percentile(pooled, 99) / 1e3))
    finally:
        for t in targets.values():
            run.stop_target(t)
        pg.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
