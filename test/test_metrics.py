"""test_metrics: the scrape endpoint (metrics_listen): /metrics in the Prometheus text format,
checked by promtool, counters that move with traffic, /healthz and /readyz."""

import http.client
import re
import shutil
import subprocess

import pytest

from harness import util

PROMTOOL = shutil.which('promtool') or '/usr/bin/promtool'


def start(pgtally, **kwargs):
    port = util.free_port()
    ini = dict(kwargs.pop('ini', {}))
    ini['metrics_listen'] = '127.0.0.1:%d' % port
    p = pgtally(ini=ini, **kwargs)
    p.metrics_port = port
    return p


def request(p, path, method='GET'):
    conn = http.client.HTTPConnection('127.0.0.1', p.metrics_port, timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode()
    finally:
        conn.close()


def scrape(p):
    status, headers, body = request(p, '/metrics')
    assert status == 200
    assert headers['Content-Type'].startswith('text/plain; version=0.0.4')
    return body


def samples(body):
    """{(name, frozenset(labels)): value} of a text exposition (values as floats)."""
    out = {}
    for line in body.splitlines():
        if not line or line.startswith('#'):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        assert m, 'not a sample line: %r' % line
        labels = frozenset(re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"', m.group(3) or ''))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(body, name, **labels):
    return samples(body).get((name, frozenset(labels.items())))


def promtool_check(body):
    res = subprocess.run([PROMTOOL, 'check', 'metrics'], input=body.encode(),
                         capture_output=True, timeout=30)
    assert res.returncode == 0, 'promtool:\n%s%s' % (res.stdout.decode(), res.stderr.decode())


@pytest.mark.skipif(not shutil.which(PROMTOOL) and not __import__('os').path.exists(PROMTOOL),
                    reason='promtool (Debian package prometheus) is not installed')
def test_promtool_accepts_metrics(pgtally):
    p = start(pgtally)
    with p.connect() as conn:
        conn.execute('SELECT 1')
        with conn.transaction():
            conn.execute('SELECT 2')
        body = scrape(p)
    promtool_check(body)
    for family in ('pgtally_build_info', 'pgtally_process_cpu_seconds_total',
                   'pgtally_process_resident_memory_bytes', 'pgtally_process_open_fds',
                   'pgtally_pools_client_active_connections',
                   'pgtally_pools_client_waiting_connections',
                   'pgtally_pools_server_idle_connections', 'pgtally_stats_queries_total',
                   'pgtally_databases_pool_size', 'pgtally_query_duration_seconds',
                   'pgtally_transaction_duration_seconds', 'pgtally_client_wait_seconds',
                   'pgtally_fingerprint_calls_total', 'pgtally_nplus1_findings_total'):
        assert '# TYPE %s ' % family in body, family
    assert re.search(r'^pgtally_build_info\{version="[0-9.]+",fingerprint_version="\d+"\} 1$',
                     body, re.M)


def test_counters_move_after_traffic(pgtally):
    p = start(pgtally)
    with p.connect() as conn:
        conn.execute('SELECT 1')
        before = scrape(p)
        for i in range(10):
            conn.execute('SELECT %s', (i,))
        after = scrape(p)
    lbl = {'database': 'app', 'user': 'app'}
    q0 = value(before, 'pgtally_stats_queries_total', **lbl)
    q1 = value(after, 'pgtally_stats_queries_total', **lbl)
    assert q1 >= q0 + 10
    assert value(after, 'pgtally_stats_received_bytes_total', **lbl) > \
        value(before, 'pgtally_stats_received_bytes_total', **lbl)
    assert value(after, 'pgtally_stats_transactions_total', **lbl) >= \
        value(before, 'pgtally_stats_transactions_total', **lbl) + 10
    assert value(after, 'pgtally_stats_client_logins_total', **lbl) == 1
    assert value(after, 'pgtally_pools_client_active_connections', **lbl) == 1
    assert value(after, 'pgtally_pools_server_idle_connections', **lbl) == 1
    assert value(after, 'pgtally_databases_current_client_connections', database='app') == 1
    assert value(after, 'pgtally_databases_pool_size', database='app2') == 5


def test_latency_histograms_observe_traffic(pgtally):
    p = start(pgtally)
    with p.connect() as conn:
        for _ in range(5):
            conn.execute('SELECT pg_sleep(0.002)')
        body = scrape(p)
    count = value(body, 'pgtally_query_duration_seconds_count', database='app')
    assert count is not None and count >= 5, 'query time is not observed (metrics_observe_query)'
    inf = value(body, 'pgtally_query_duration_seconds_bucket', database='app', le='+Inf')
    assert inf == count
    fast = value(body, 'pgtally_query_duration_seconds_bucket', database='app', le='0.001')
    assert fast < count     # every query slept 2 ms
    assert value(body, 'pgtally_query_duration_seconds_sum', database='app') >= 0.01
    assert value(body, 'pgtally_transaction_duration_seconds_count', database='app') >= 5
    assert value(body, 'pgtally_client_wait_seconds_count', database='app') >= 5


def test_health_and_readiness(pgtally):
    p = start(pgtally)
    assert request(p, '/healthz')[0] == 200
    assert request(p, '/readyz')[0] == 200
    p.admin('PAUSE')
    status, _, body = request(p, '/readyz')
    assert status == 503 and 'paused' in body
    assert request(p, '/healthz')[0] == 200
    assert value(scrape(p), 'pgtally_paused') == 1
    p.admin('RESUME')
    assert request(p, '/readyz')[0] == 200
    p.admin('PAUSE app2')
    status, _, body = request(p, '/readyz')
    assert status == 503 and 'app2' in body
    p.admin('RESUME app2')
    assert request(p, '/readyz')[0] == 200


def test_readiness_with_unreachable_database(pgtally):
    p = start(pgtally, databases={'down': {'host': '127.0.0.1', 'port': util.free_port(),
                                           'dbname': 'app'}})
    assert request(p, '/readyz')[0] == 200
    with pytest.raises(Exception):
        p.connect(dbname='down', connect_timeout=5)
    status, _, body = request(p, '/readyz')
    assert status == 503 and 'down' in body and 'unreachable' in body


def test_paths_and_methods(pgtally):
    p = start(pgtally)
    assert request(p, '/nothing')[0] == 404
    assert request(p, '/')[0] == 404
    status, headers, _ = request(p, '/metrics', method='POST')
    assert status == 405 and headers.get('Allow') == 'GET, HEAD'
    assert request(p, '/readyz', method='DELETE')[0] == 405
    status, _, body = request(p, '/metrics', method='HEAD')
    assert status == 200 and body == ''
    assert request(p, '/metrics?x=1')[0] == 200


def test_label_values_are_escaped(pgtally, pg):
    name = 'we"ird\\db'
    p = start(pgtally, databases={name: {'host': pg.host, 'port': pg.port, 'dbname': 'app'}})
    with p.connect(dbname=name) as conn:
        conn.execute('SELECT 1')
        body = scrape(p)
    assert 'database="we\\"ird\\\\db"' in body
    if shutil.which(PROMTOOL) or __import__('os').path.exists(PROMTOOL):
        promtool_check(body)


def test_metrics_disabled_by_default(pgtally):
    p = pgtally()
    assert p.settings.get('metrics_listen') is None
    config = {r['key']: r['value'] for r in p.admin('SHOW CONFIG')}
    assert config['metrics_listen'] == ''

