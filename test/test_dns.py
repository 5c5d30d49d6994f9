"""Server host names: looked up without blocking the event loop (resolv_conf names the test's
DNS server, test/harness/fakedns.py), kept for dns_max_ttl, their addresses used in turn, and
cancel requests sent to the address the server connection went to."""

import threading

import psycopg
import pytest

from harness.fakedns import FakeDns
from harness.util import wait_for


@pytest.fixture
def dns():
    d = FakeDns({'db.pgt.test': ['127.0.0.1'], 'slow.pgt.test': ['127.0.0.1'],
                 'two.pgt.test': ['127.0.0.1', '127.0.0.5'],
                 'half.pgt.test': ['127.0.0.2', '127.0.0.1']})
    yield d
    d.stop()


def start(pgtally, pg, dns, tmp_path, hosts, **ini):
    databases = {name: {'host': host, 'port': pg.port, 'dbname': 'app'}
                 for name, host in hosts.items()}
    settings = dict({'resolv_conf': dns.resolv_conf(str(tmp_path)), 'workers': 1,
                     'query_wait_timeout': 10}, **ini)
    return pgtally(ini=settings, databases=databases)


def lists(p):
    return {r['list']: r['items'] for r in p.admin('SHOW LISTS')}


def test_a_host_name_is_looked_up_once_per_dns_max_ttl(pgtally, pg, dns, tmp_path):
    p = start(pgtally, pg, dns, tmp_path, {'named': 'db.pgt.test'}, default_pool_size=3,
              dns_max_ttl=600)
    conns = [p.connect(dbname='named') for _ in range(3)]
    try:
        for c in conns:  # three transactions at once: three server connections
            c.execute('BEGIN')
            assert c.execute('SELECT 1').fetchone() == (1,)
        for c in conns:
            c.execute('COMMIT')
    finally:
        for c in conns:
            c.close()
    servers = [r for r in p.admin('SHOW SERVERS') if r['database'] == 'named']
    assert len(servers) == 3 and {r['addr'] for r in servers} == {'db.pgt.test'}, servers
    assert dns.count('db.pgt.test') == 1
    assert lists(p)['dns_names'] == 1


def test_a_slow_lookup_holds_up_no_one_else(pgtally, pg, dns, tmp_path):
    """While the DNS server sits on the answer for one database's host, the other database
    and the console are served: the lookup does not block the event loop."""
    p = start(pgtally, pg, dns, tmp_path, {'slow': 'slow.pgt.test', 'fast': pg.host})
    release = dns.hold('slow.pgt.test')
    got = []
    t = threading.Thread(target=lambda: got.append(
        p.connect(dbname='slow', connect_timeout=20).execute('SELECT 7').fetchone()))
    t.start()
    try:
        assert wait_for(lambda: dns.count('slow.pgt.test') >= 1, timeout=10)
        with p.connect(dbname='fast', connect_timeout=5) as c:
            assert c.execute('SELECT 8').fetchone() == (8,)
        assert lists(p)['dns_queries'] == 1  # under way
        assert got == []
    finally:
        release.set()
        t.join(20)
    assert got == [(7,)]
    assert lists(p)['dns_queries'] == 0


def test_an_unknown_host_name_fails_the_login_with_why(pgtally, pg, dns, tmp_path):
    p = start(pgtally, pg, dns, tmp_path, {'nowhere': 'nosuch.pgt.test'})
    with pytest.raises(psycopg.OperationalError) as e:
        p.connect(dbname='nowhere', connect_timeout=10)
    assert 'cannot resolve nosuch.pgt.test' in str(e.value), str(e.value)
    assert 'cannot resolve nosuch.pgt.test' in p.log()


def test_the_addresses_of_a_name_are_used_in_turn_and_cancels_follow(pgtally, pg, dns,
                                                                      tmp_path):
    """two.pgt.test has two addresses (PostgreSQL listens on both: harness/postgres.py): new
    server connections alternate between them, and a cancel request goes to the address of
    the server connection it is for, not to the name's next address."""
    p = start(pgtally, pg, dns, tmp_path, {'two': 'two.pgt.test'}, default_pool_size=4)
    conns = [p.connect(dbname='two') for _ in range(4)]
    try:
        addrs = []
        for c in conns:
            c.execute('BEGIN')
            addrs.append(c.execute('SELECT host(inet_server_addr())').fetchone()[0])
        assert sorted(addrs) == ['127.0.0.1', '127.0.0.1', '127.0.0.5', '127.0.0.5'], addrs
        for c in conns:
            c.execute('COMMIT')
        for c, addr in zip(conns, addrs):  # the same servers again, one per client
            c.execute('BEGIN')
            addr_now = c.execute('SELECT host(inet_server_addr())').fetchone()[0]
            if addr_now != '127.0.0.5':
                continue
            timer = threading.Timer(0.5, c.cancel)
            timer.start()
            with pytest.raises(psycopg.errors.QueryCanceled):
                c.execute('SELECT pg_sleep(20)')
            timer.join()
            c.execute('ROLLBACK')
            break
        else:
            pytest.fail('no server on 127.0.0.5 the second time: %s' % addrs)
    finally:
        for c in conns:
            c.close()
    assert dns.count('two.pgt.test') == 1
    rows = p.admin('SHOW DNS_HOSTS')
    assert [(r['hostname'], r['addrs']) for r in rows] == [('two.pgt.test',
                                                           '127.0.0.1,127.0.0.5')], rows
    assert 0 <= rows[0]['ttl'] <= 15
    assert p.admin('SHOW DNS_ZONES') == []


def test_an_address_that_refuses_is_skipped_at_once(pgtally, pg, dns, tmp_path):
    """Nothing listens on 127.0.0.2, the first address of half.pgt.test: the login goes on to
    the other address at once (not after server_login_retry), and later connections skip the
    one that failed until the name is looked up again."""
    p = start(pgtally, pg, dns, tmp_path, {'half': 'half.pgt.test'}, default_pool_size=3,
              server_login_retry=600, dns_max_ttl=600)
    conns = [p.connect(dbname='half', connect_timeout=10) for _ in range(3)]
    try:
        addrs = []
        for c in conns:
            c.execute('BEGIN')
            addrs.append(c.execute('SELECT host(inet_server_addr())').fetchone()[0])
        assert addrs == ['127.0.0.1'] * 3, addrs
    finally:
        for c in conns:
            c.close()
    assert p.log().count('Connection refused') == 1, p.log()
