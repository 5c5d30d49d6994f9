"""test_django_nplus1: N+1 detection end to end with Django 3.2 and psycopg2 (Debian's).

The app in test/django_app has views that cause N+1 patterns (ForeignKey, reverse ForeignKey
and ManyToMany access in a loop, .count() in a loop, create() in a loop, the same .get() again
and again) and their fixed versions (select_related, prefetch_related, annotate, bulk_create,
a single get). A middleware tags every statement with a sqlcommenter comment.

test_django_app_query_counts checks the app itself straight against PostgreSQL: the bad views
really repeat one statement, the fixed ones do not. The pgtally tests serve the app over HTTP
(wsgiref) through pgtally in three settings and read SHOW NPLUS1: every bad view is flagged with
its route and the right kind, no fixed view is.
"""

import collections
import os
import re
import time
import urllib.parse

import psycopg
import pytest

from harness import django as djangoh

THRESHOLD = 5  # nplus1_threshold's default

# route (the URL pattern, as the middleware tags it): what the view repeats per request.
#   path    what to GET
#   kind    the SHOW NPLUS1 kind expected
#   calls   executions of the repeated statement per request
#   query   a table the repeated statement reads or writes
#   source  for n+1: a table the statement before the loop reads
BAD = {
    'bad/fk-loop/': dict(path='bad/fk-loop/', kind='n+1', calls=20,
                         query='shop_author', source='shop_book'),
    'bad/count-loop/': dict(path='bad/count-loop/', kind='n+1', calls=10,
                            query='shop_book', source='shop_author'),
    'bad/m2m-loop/': dict(path='bad/m2m-loop/', kind='n+1', calls=20,
                          query='shop_book_tags', source='shop_book'),
    'bad/reverse-fk-loop/': dict(path='bad/reverse-fk-loop/', kind='n+1', calls=20,
                                 query='shop_review', source='shop_book'),
    'bad/create-loop/': dict(path='bad/create-loop/', kind='write-loop', calls=10,
                             query='shop_review', source=None),
    'bad/same-get/<int:pk>/': dict(path='bad/same-get/1/', kind='duplicate', calls=10,
                                   query='shop_author', source=None),
}

# route: (path, most statements a request may run)
FIXED = {
    'fixed/fk-loop/': ('fixed/fk-loop/', 1),
    'fixed/count-loop/': ('fixed/count-loop/', 1),
    'fixed/m2m-loop/': ('fixed/m2m-loop/', 2),
    'fixed/reverse-fk-loop/': ('fixed/reverse-fk-loop/', 2),
    'fixed/create-loop/': ('fixed/create-loop/', 2),
    'fixed/same-get/<int:pk>/': ('fixed/same-get/1/', 1),
}

# The columns of SHOW NPLUS1, in order.
NPLUS1_COLUMNS = ['database', 'user', 'application_name', 'route', 'kind', 'fingerprint',
                  'source_fingerprint', 'bursts', 'last_calls', 'max_calls', 'total_time_us',
                  'first_seen', 'last_seen', 'query', 'source_query', 'source_rows',
                  'total_calls']

COMMENT_RE = re.compile(r"/\*((?:\w+='[^']*',?)+)\*/\s*$")
TRACEPARENT_RE = re.compile(r'^00-([0-9a-f]{32})-([0-9a-f]{16})-01$')

SHOW_WAIT = 5.0  # seconds for the last units of work to end (disconnect, idle gap)


def sqlcommenter_tags(sql):
    """The tags of the sqlcommenter comment that ends sql, url-decoded ({} when none)."""
    m = COMMENT_RE.search(sql)
    if not m:
        return {}
    tags = {}
    for item in m.group(1).rstrip(',').split(','):
        key, _, value = item.partition('=')
        tags[urllib.parse.unquote(key)] = urllib.parse.unquote(value.strip("'"))
    return tags


# ---------------------------------------------------------------------- the app itself


@pytest.fixture(scope='module')
def django_db(pg):
    """Django set up in this process against PostgreSQL directly; fresh tables and seed data."""
    djangoh.setup_in_process(pg.port, pg.host)
    djangoh.reset_and_seed()
    yield
    from django.db import connections
    connections.close_all()


def run_in_process(path):
    """GET path with Django's test client; the statements it ran as (sql template, params,
    text sent to the server)."""
    from django.db import connection
    from django.test import Client

    statements = []

    def record(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        sent = context['cursor'].cursor.query
        statements.append((sql, params, sent.decode('utf-8') if sent else ''))
        return result

    # Installed before the middleware's wrapper, so it runs inside it and sees the comment.
    with connection.execute_wrapper(record):
        response = Client().get('/' + path)
    assert response.status_code == 200, response.content
    return statements


def strip_comment(sql):
    return COMMENT_RE.sub('', sql).rstrip()


def test_django_app_query_counts(django_db):
    from django.test.utils import override_settings

    for route, bad in BAD.items():
        statements = run_in_process(bad['path'])
        listing = '\n'.join(s[2] for s in statements)
        by_sql = collections.defaultdict(list)
        for sql, params, _ in statements:
            by_sql[strip_comment(sql)].append(tuple(params or ()))
        sql, params = max(by_sql.items(), key=lambda item: len(item[1]))
        assert len(params) == bad['calls'] >= THRESHOLD + 1, (route, listing)
        assert bad['query'] in sql, (route, sql)
        if bad['kind'] == 'duplicate':
            assert len(set(params)) == 1, (route, params)
        else:
            assert len(set(params)) > 1, (route, params)
        if bad['kind'] == 'write-loop':
            assert sql.startswith('INSERT'), (route, sql)
        else:
            assert sql.startswith('SELECT'), (route, sql)
        if bad['kind'] == 'n+1':
            # First a statement on another table, then the loop.
            first = strip_comment(statements[0][0])
            assert first != sql and bad['source'] in first, (route, listing)
        for _, _, sent in statements:
            tags = sqlcommenter_tags(sent)
            assert tags.get('route') == route and tags.get('framework') == 'django', sent
            assert tags.get('controller') == '-'.join(route.split('/')[:2]), sent
            assert 'traceparent' not in tags, sent

    for route, (path, most) in FIXED.items():
        statements = run_in_process(path)
        listing = '\n'.join(s[2] for s in statements)
        assert 1 <= len(statements) <= most, (route, listing)
        counts = collections.Counter(strip_comment(s[0]) for s in statements)
        assert max(counts.values()) == 1, (route, listing)
        for _, _, sent in statements:
            assert sqlcommenter_tags(sent).get('route') == route, sent

    # With traceparent on, each request carries its own trace-id on all of its statements.
    trace_ids = []
    with override_settings(PGT_TRACEPARENT=True):
        for _ in range(2):
            statements = run_in_process(BAD['bad/count-loop/']['path'])
            ids = set()
            for _, _, sent in statements:
                m = TRACEPARENT_RE.match(sqlcommenter_tags(sent).get('traceparent', ''))
                assert m, sent
                ids.add(m.group(1))
            assert len(ids) == 1, ids
            trace_ids.append(ids.pop())
    assert trace_ids[0] != trace_ids[1]


def test_doc_shows_the_middleware():
    """doc/django.md shows test/django_app/sqlcommenter.py from its imports on: keep them equal."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, 'doc', 'django.md')) as f:
        doc = f.read()
    with open(os.path.join(root, 'test', 'django_app', 'sqlcommenter.py')) as f:
        code = f.read()
    code = code[code.index('import secrets'):]
    blocks = re.findall(r'```python\n(.*?)```', doc, re.S)
    assert code in blocks, 'doc/django.md no longer shows test/django_app/sqlcommenter.py'


# ---------------------------------------------------------------------- through pgtally


def show_nplus1(p):
    return p.admin('SHOW NPLUS1')


def format_table(rows):
    if not rows:
        return 'SHOW NPLUS1: (no rows)'
    lines = ['SHOW NPLUS1: %d rows' % len(rows)]
    for row in rows:
        lines.append('  ' + ' | '.join('%s=%s' % (k, row[k]) for k in row))
    return '\n'.join(lines)


def test_show_nplus1_on_console(pgtally):
    p = pgtally()
    with psycopg.connect(p.admin_dsn, autocommit=True) as conn:
        cur = psycopg.ClientCursor(conn)
        cur.execute('SHOW NPLUS1')
        assert [c.name for c in cur.description] == NPLUS1_COLUMNS
        assert cur.fetchall() == []
        cur.execute('RESET NPLUS1')


SETTINGS = [
    # A new connection per request: units of work end at disconnect.
    pytest.param(dict(conn_max_age=0, atomic=False, traceparent=False, threaded=True,
                      repeat=2), id='conn_max_age_0'),
    # Every view in one transaction (BEGIN ... COMMIT around the loop).
    pytest.param(dict(conn_max_age=0, atomic=True, traceparent=False, threaded=True,
                      repeat=2), id='atomic_requests'),
    # One connection for all requests; only the traceparent's trace-id tells the requests of
    # one view apart, as they come back to back with the same route.
    pytest.param(dict(conn_max_age=None, atomic=False, traceparent=True, threaded=False,
                      repeat=THRESHOLD), id='persistent_traceparent'),
]


def wait_for_findings(p, repeat):
    """SHOW NPLUS1 once every bad route has its findings from all requests (or at timeout)."""
    deadline = time.monotonic() + SHOW_WAIT
    while True:
        rows = show_nplus1(p)
        bursts = {(r['route'], r['kind']): int(r['bursts']) for r in rows}
        if all(bursts.get((route, bad['kind']), 0) >= repeat for route, bad in BAD.items()):
            return rows
        if time.monotonic() >= deadline:
            return rows
        time.sleep(0.1)


@pytest.mark.parametrize('setting', SETTINGS)
def test_django_nplus1_through_pgtally(pgtally, django_db, setting):
    from django.conf import settings as django_settings

    p = pgtally()
    env = djangoh.app_env(p.port, p.host, conn_max_age=setting['conn_max_age'],
                          atomic=setting['atomic'], traceparent=setting['traceparent'])
    repeat = setting['repeat']
    server = djangoh.DjangoServer(env, threaded=setting['threaded'])
    try:
        server.start()
        paths = [bad['path'] for bad in BAD.values()] + [f[0] for f in FIXED.values()]
        for path in paths:
            for _ in range(repeat):
                status, body = server.get(path)
                assert status == 200 and isinstance(body, dict), (path, status, body)
    finally:
        # Its connections close: the last units of work end.
        server.stop()
        server_log = server.log().strip()
        server.cleanup()

    rows = wait_for_findings(p, repeat)
    table = format_table(rows)
    if server_log:
        table += '\n--- Django server stderr ---\n' + server_log
    assert rows and list(rows[0]) == NPLUS1_COLUMNS, table

    for route, bad in BAD.items():
        found = [r for r in rows if r['route'] == route]
        assert {r['kind'] for r in found} == {bad['kind']}, '%s: want %s\n%s' % (
            route, bad['kind'], table)
        row = found[0]
        what = '%s (%s)\n%s' % (route, bad['kind'], table)
        assert len(found) == 1, what
        assert row['database'] == 'app' and row['user'] == 'app', what
        assert row['application_name'] == django_settings.APPLICATION_NAME, what
        # One burst per request, each exactly the view's own executions: units of work were
        # neither merged across requests nor cut short.
        assert int(row['bursts']) == repeat, what
        assert int(row['last_calls']) == bad['calls'] >= THRESHOLD, what
        assert int(row['max_calls']) == bad['calls'], what
        assert int(row['total_time_us']) > 0, what
        assert row['fingerprint'] and bad['query'] in row['query'], what
        if bad['kind'] == 'n+1':
            assert row['source_query'] and bad['source'] in row['source_query'], what
            assert row['source_fingerprint'] not in ('', '0', 0, None), what
            assert row['source_fingerprint'] != row['fingerprint'], what

    unexpected = [r for r in rows if r['route'] not in BAD]
    assert not unexpected, 'findings outside the bad views (fixed views: %s)\n%s' % (
        ', '.join(FIXED), table)

    p.admin('RESET NPLUS1')
    assert show_nplus1(p) == []
