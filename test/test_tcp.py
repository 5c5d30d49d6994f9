"""PgBouncer's TCP options: tcp_defer_accept, tcp_keepalive, tcp_keepcnt/idle/intvl,
tcp_user_timeout, tcp_socket_buffer and listen_backlog act on the pooler's own sockets.

The pooler's sockets are read from outside: pidfd_getfd(2) gives the test a duplicate of the
pooler's descriptor (the test runs as root, or as the pooler's user), and getsockopt on the
duplicate reads the options of the very socket the pooler uses."""

import ctypes
import os
import signal
import socket
import subprocess
import time

import pytest

import rawpg
from harness.util import wait_for

SYS_PIDFD_OPEN = 434
SYS_PIDFD_GETFD = 438
_libc = ctypes.CDLL(None, use_errno=True)


def _syscall(*args):
    r = _libc.syscall(*[ctypes.c_long(a) for a in args])
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def _tcp_table():
    """{socket inode: (local port, remote port, state)} from /proc/net/tcp and tcp6."""
    out = {}
    for name in ('/proc/net/tcp', '/proc/net/tcp6'):
        with open(name) as f:
            next(f)
            for line in f:
                cols = line.split()
                lport = int(cols[1].rsplit(':', 1)[1], 16)
                rport = int(cols[2].rsplit(':', 1)[1], 16)
                out[int(cols[9])] = (lport, rport, int(cols[3], 16))
    return out


LISTEN = 0x0A
CLOSE_WAIT = 0x08


def _pooler_tcp_fds(pid):
    """(descriptor number, (local port, remote port, state)) of each TCP socket pid holds."""
    table = _tcp_table()
    fd_dir = '/proc/%d/fd' % pid
    for name in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if link.startswith('socket:[') and int(link[8:-1]) in table:
            yield int(name), table[int(link[8:-1])]


def pooler_socket(pid, local_port=None, remote_port=None, state=None):
    """A socket object duplicating the pooler's socket with these ports (the caller closes
    it); None when the pooler has no such socket."""
    for fd, entry in _pooler_tcp_fds(pid):
        if ((local_port is None or entry[0] == local_port) and
                (remote_port is None or entry[1] == remote_port) and
                (state is None or entry[2] == state)):
            pidfd = _syscall(SYS_PIDFD_OPEN, pid, 0)
            try:
                dup = _syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
            finally:
                os.close(pidfd)
            return socket.socket(fileno=dup)
    return None


def tcp_opts(s):
    tcp = socket.IPPROTO_TCP
    return {
        'nodelay': s.getsockopt(tcp, socket.TCP_NODELAY),
        'keepalive': s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        'keepcnt': s.getsockopt(tcp, socket.TCP_KEEPCNT),
        'keepidle': s.getsockopt(tcp, socket.TCP_KEEPIDLE),
        'keepintvl': s.getsockopt(tcp, socket.TCP_KEEPINTVL),
        'user_timeout': s.getsockopt(tcp, socket.TCP_USER_TIMEOUT),
        'sndbuf': s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
        'rcvbuf': s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
    }


def client_side_opts(p, conn):
    """The options of the pooler's end of psycopg connection conn."""
    with socket.socket(fileno=os.dup(conn.pgconn.socket)) as mine:
        port = mine.getsockname()[1]
    s = pooler_socket(p.pid, local_port=p.port, remote_port=port)
    assert s is not None, 'the pooler has no socket for client port %d' % port
    with s:
        return tcp_opts(s)


def server_side_opts(p, pg):
    s = pooler_socket(p.pid, remote_port=pg.port)
    assert s is not None, 'the pooler has no connection to PostgreSQL'
    with s:
        return tcp_opts(s)


def listener_defer(p):
    s = pooler_socket(p.pid, local_port=p.port, state=LISTEN)
    assert s is not None
    with s:
        return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT)


def system_value(name):
    with open('/proc/sys/net/ipv4/' + name) as f:
        return int(f.read())


def test_defaults_like_pgbouncer(pgtally, pg):
    """tcp_keepalive = 1 and tcp_defer_accept = 1 by default; clients get TCP_NODELAY and
    keepalive from the listener, server connections get them too."""
    p = pgtally()
    assert listener_defer(p) > 0
    with p.connect() as conn:
        conn.execute('SELECT 1')
        o = client_side_opts(p, conn)
        assert o['nodelay'] == 1 and o['keepalive'] == 1
        assert o['keepidle'] == system_value('tcp_keepalive_time')
        assert o['user_timeout'] == 0
        s = server_side_opts(p, pg)
        assert s['nodelay'] == 1 and s['keepalive'] == 1


def test_options_reach_client_and_server_sockets(pgtally, pg):
    p = pgtally(ini={'tcp_keepidle': 77, 'tcp_keepintvl': 11, 'tcp_keepcnt': 5,
                     'tcp_user_timeout': 4321, 'tcp_socket_buffer': 65536})
    with p.connect() as conn:
        conn.execute('SELECT 1')
        for o in (client_side_opts(p, conn), server_side_opts(p, pg)):
            assert o['keepalive'] == 1
            assert (o['keepidle'], o['keepintvl'], o['keepcnt']) == (77, 11, 5)
            assert o['user_timeout'] == 4321
            # Linux doubles the size asked for, to leave room for its bookkeeping
            assert o['sndbuf'] == 2 * 65536 and o['rcvbuf'] == 2 * 65536


def test_set_applies_to_new_connections(pgtally):
    p = pgtally(ini={'tcp_keepidle': 77})
    with p.connect() as old:
        assert client_side_opts(p, old)['keepidle'] == 77
        p.admin('SET tcp_keepidle = 99')
        with p.connect() as new:
            assert client_side_opts(p, new)['keepidle'] == 99
        # an open connection keeps what it was accepted with
        assert client_side_opts(p, old)['keepidle'] == 77
        p.admin('SET tcp_keepidle = 0')
        with p.connect() as new:
            assert client_side_opts(p, new)['keepidle'] == system_value('tcp_keepalive_time')
        p.admin('SET tcp_keepalive = 0')
        p.admin('SET tcp_user_timeout = 2500')
        with p.connect() as new:
            o = client_side_opts(p, new)
            assert o['keepalive'] == 0 and o['user_timeout'] == 2500
    rows = {r['key']: r['value'] for r in p.admin('SHOW CONFIG')}
    assert rows['tcp_keepalive'] == '0' and rows['tcp_user_timeout'] == '2500'
    err = None
    try:
        p.admin('SET tcp_keepcnt = 500')
    except Exception as e:  # noqa: BLE001 - the console's error is what is checked
        err = str(e)
    assert err and 'tcp_keepcnt' in err


def test_reload_applies_to_listener(pgtally):
    p = pgtally()
    assert listener_defer(p) > 0
    p.settings['tcp_defer_accept'] = 0
    p.settings['tcp_keepintvl'] = 13
    p.write_config()
    p.admin('RELOAD')
    assert listener_defer(p) == 0
    with p.connect() as conn:
        assert client_side_opts(p, conn)['keepintvl'] == 13


def _accepted_clients(p):
    """How many TCP sockets the pooler holds from clients that are still open at the client's
    end (not its listener, and not the harness's readiness probes, a TCP connect and close,
    which the pooler may not have seen close yet when start() returns)."""
    return sum(1 for _, e in _pooler_tcp_fds(p.pid)
               if e[0] == p.port and e[2] not in (LISTEN, CLOSE_WAIT))


def _all_threads_stopped(pid):
    for tid in os.listdir('/proc/%d/task' % pid):
        with open('/proc/%d/task/%s/stat' % (pid, tid)) as f:
            if f.read().rsplit(')', 1)[1].split()[0] != 'T':
                return False
    return True


@pytest.mark.parametrize('defer', [1, 0])
def test_defer_accept_wakes_on_first_packet(pgtally, defer):
    """With tcp_defer_accept a connection that has sent nothing is not handed to the pooler;
    once its startup packet arrives it is accepted and served. Without, it is accepted on the
    handshake."""
    p = pgtally(ini={'tcp_defer_accept': defer, 'auth_type': 'trust'})
    assert _accepted_clients(p) == 0
    c = rawpg.Conn(p.host, p.port)
    try:
        time.sleep(0.5)
        assert _accepted_clients(p) == (0 if defer else 1)
        rawpg.login_trust(c, 'app', 'app')
        assert _accepted_clients(p) == 1
        c.send(rawpg.query('SELECT 42'))
        kinds = []
        while not kinds or kinds[-1] != 'Z':
            kinds.append(c.read_message()[0])
        assert kinds == ['T', 'D', 'C', 'Z']
    finally:
        c.close()


def test_listen_backlog(pgtally):
    p = pgtally(ini={'listen_backlog': 77})
    out = subprocess.run(['ss', '-Hltn', 'sport = :%d' % p.port], capture_output=True,
                         text=True, check=True).stdout
    # for a listening socket ss shows the backlog as Send-Q
    backlogs = [line.split()[2] for line in out.splitlines()]
    assert backlogs and all(b == '77' for b in backlogs)  # one listener per worker


def test_queued_connections_all_accepted(pgtally):
    """pgtally takes one connection each time its listener is readable (src/listener.c): a
    backlog that piled up while it could not run is still drained, every connection logged
    in and answered, because the level-triggered listener is reported again while more wait."""
    n = 60
    p = pgtally(ini={'auth_type': 'trust', 'max_client_conn': 200})
    conns = []
    os.kill(p.pid, signal.SIGSTOP)
    # The stop reaches every thread a moment later: with workers = 2 a worker could still
    # accept in between. Connect only once all of them are stopped.
    assert wait_for(lambda: _all_threads_stopped(p.pid), timeout=5)
    try:
        for _ in range(n):
            c = rawpg.Conn(p.host, p.port)
            conns.append(c)
            c.send(rawpg.startup_packet({'user': 'app', 'database': 'app'}))
        time.sleep(0.2)  # every handshake done and every startup packet queued at the listener
        assert _accepted_clients(p) == 0
    finally:
        os.kill(p.pid, signal.SIGCONT)
    try:
        for c in conns:
            kinds = []
            while not kinds or kinds[-1] != 'Z':
                kinds.append(c.read_message()[0])
            assert kinds[0] == 'R' and 'K' in kinds, kinds
        assert _accepted_clients(p) == n
        for c in conns:
            c.send(rawpg.query('SELECT 42'))
        for c in conns:
            rows = []
            while not rows or rows[-1][0] != 'Z':
                rows.append(c.read_message())
            assert [t for t, _ in rows] == ['T', 'D', 'C', 'Z']
            assert rows[1][1].endswith(b'42')
    finally:
        for c in conns:
            c.close()


def test_accept_out_of_descriptors_backs_off(pgtally):
    """When accept4 fails for want of descriptors (EMFILE) the connection stays queued and the
    listener readable: pgtally rests the listener (ACCEPT_RETRY_USEC, 0.5 s) instead of trying
    again, and logging, at every loop turn, and serves what waited once descriptors are back."""
    import resource
    p = pgtally(ini={'auth_type': 'trust'})
    with p.connect() as conn:  # a server in the pool, so that later logins need no new socket
        conn.execute('SELECT 1')
    soft, hard = resource.prlimit(p.pid, resource.RLIMIT_NOFILE)
    in_use = len(os.listdir('/proc/%d/fd' % p.pid))
    conns = []
    resource.prlimit(p.pid, resource.RLIMIT_NOFILE, (in_use, hard))
    try:
        for _ in range(5):
            c = rawpg.Conn(p.host, p.port)
            conns.append(c)
            c.send(rawpg.startup_packet({'user': 'app', 'database': 'app'}))
        assert p.wait_for_log(r'WARNING accept failed: Too many open files'), p.log()[-2000:]
        time.sleep(1.2)
        failures = p.log().count('accept failed')
        # each worker's listener rests on its own (PGTALLY_WORKERS=2 make check)
        listeners = int(p.settings.get('workers', 1))
        assert 1 <= failures <= 5 * listeners, '%d accept failures logged in about 1.2 s' % failures
    finally:
        resource.prlimit(p.pid, resource.RLIMIT_NOFILE, (soft, hard))
    try:
        for c in conns:
            c.send(rawpg.query('SELECT 42'))
            kinds = []
            while not kinds or kinds[-1] != 'Z' or 'D' not in kinds:
                kinds.append(c.read_message()[0])
            assert kinds[0] == 'R' and kinds[-4:] == ['T', 'D', 'C', 'Z'], kinds
    finally:
        for c in conns:
            c.close()
    assert p.is_running()
