"""pgbench through pgtally: many clients, few servers, no failed transactions."""

import os
import re
import subprocess

import pytest

PGBENCH = '/usr/lib/postgresql/15/bin/pgbench'


@pytest.fixture(scope='module')
def bench_db(pg):
    env = dict(os.environ, PGPASSWORD='app_pw')
    subprocess.run([PGBENCH, '-i', '-s', '1', '-q', '-h', pg.host, '-p', str(pg.port),
                    '-U', 'app', 'app'], check=True, env=env, capture_output=True)
    return pg


def run_pgbench(p, *args):
    env = dict(os.environ, PGPASSWORD='app_pw')
    r = subprocess.run([PGBENCH, '-h', p.host, '-p', str(p.port), '-U', 'app', *args, 'app'],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    done = int(re.search(r'number of transactions actually processed: (\d+)', r.stdout).group(1))
    failed = re.search(r'number of failed transactions: (\d+)', r.stdout)
    return done, int(failed.group(1)) if failed else 0, r.stdout


@pytest.mark.parametrize('mode', ['simple', 'extended'])
def test_pgbench_select_only(pgtally, bench_db, mode):
    p = pgtally(ini={'default_pool_size': 5, 'max_client_conn': 200})
    done, failed, out = run_pgbench(p, '-S', '-M', mode, '-c', '50', '-j', '2', '-t', '200')
    assert failed == 0, out
    assert done == 50 * 200


def test_pgbench_tpcb_like_transactions(pgtally, bench_db):
    p = pgtally(ini={'default_pool_size': 5, 'max_client_conn': 200})
    done, failed, out = run_pgbench(p, '-M', 'extended', '-c', '20', '-j', '2', '-t', '50')
    assert failed == 0, out
    assert done == 20 * 50


def test_pgbench_connection_per_transaction(pgtally, bench_db):
    p = pgtally(ini={'default_pool_size': 5, 'max_client_conn': 200})
    done, failed, out = run_pgbench(p, '-S', '-C', '-c', '10', '-j', '2', '-t', '50')
    assert failed == 0, out
    assert done == 10 * 50
