"""rawpg: a tiny PostgreSQL v3 protocol client over a raw socket, for tests that need to send
what no driver sends (bad lengths, odd startup packets, pipelines without Sync)."""

import base64
import hashlib
import hmac
import os
import socket
import struct


def startup_packet(params, version=196608):
    body = struct.pack('!I', version)
    for k, v in params.items():
        body += k.encode() + b'\0' + v.encode() + b'\0'
    body += b'\0'
    return struct.pack('!I', len(body) + 4) + body


def message(type_, body=b''):
    return type_.encode() + struct.pack('!I', len(body) + 4) + body


def query(sql):
    return message('Q', sql.encode() + b'\0')


class Conn:
    def __init__(self, host, port, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b''

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('connection closed')
            self.buf += chunk

    def read_byte(self):
        self._fill(1)
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def read_message(self):
        """(type, body) of the next message."""
        self._fill(5)
        type_ = self.buf[:1].decode()
        (length,) = struct.unpack('!I', self.buf[1:5])
        self._fill(1 + length)
        body = self.buf[5:1 + length]
        self.buf = self.buf[1 + length:]
        return type_, body

    def read_until(self, type_):
        """Messages up to and including the first of type_."""
        out = []
        while True:
            m = self.read_message()
            out.append(m)
            if m[0] == type_:
                return out

    def closed(self):
        """True when the server has closed the connection (after reading what is left)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def error_fields(body):
    """Fields of an ErrorResponse/NoticeResponse body as a dict keyed by field letter."""
    out = {}
    for part in body.split(b'\0'):
        if part:
            out[chr(part[0])] = part[1:].decode(errors='replace')
    return out


def login_trust(conn, user, dbname):
    """Startup with no password exchange (auth_type=trust); returns messages to ReadyForQuery."""
    conn.send(startup_packet({'user': user, 'database': dbname}))
    return conn.read_until('Z')


# Extended-protocol messages, built as a driver would.

def parse(name, sql, types=()):
    body = name.encode() + b'\0' + sql.encode() + b'\0' + struct.pack('!H', len(types))
    for t in types:
        body += struct.pack('!I', t)
    return message('P', body)


def bind(stmt, params=(), portal=''):
    body = portal.encode() + b'\0' + stmt.encode() + b'\0' + struct.pack('!H', 0)
    body += struct.pack('!H', len(params))
    for p in params:
        v = p if isinstance(p, bytes) else str(p).encode()
        body += struct.pack('!I', len(v)) + v
    body += struct.pack('!H', 0)
    return message('B', body)


def execute(portal=''):
    return message('E', portal.encode() + b'\0' + struct.pack('!I', 0))


def describe_stmt(name):
    return message('D', b'S' + name.encode() + b'\0')


def close_stmt(name):
    return message('C', b'S' + name.encode() + b'\0')


SYNC = message('S')
FLUSH = message('H')


def trust_conn(p):
    c = Conn(p.host, p.port)
    login_trust(c, 'app', 'app')
    return c


def data_values(msgs):
    """The first column of every DataRow, as text."""
    out = []
    for t, body in msgs:
        if t == 'D':
            (n,) = struct.unpack('!I', body[2:6])
            out.append(body[6:6 + n].decode())
    return out


def simple(conn, sql):
    """Send one simple Query; its messages up to ReadyForQuery."""
    conn.send(query(sql))
    return conn.read_until('Z')


def types(msgs):
    return ''.join(t for t, _ in msgs)


def _scram_hmac(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


class ScramClient:
    """The client's side of SCRAM-SHA-256 (RFC 5802/7677, no channel binding), one step at a
    time, for tests that act between the steps. first() is the SASLInitialResponse body,
    final(server_first) the SASLResponse body, and check(server_final) verifies the server."""

    def __init__(self, password):
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = 'n=,r=' + self.nonce

    def first(self):
        data = ('n,,' + self.first_bare).encode()
        return b'SCRAM-SHA-256\0' + struct.pack('!I', len(data)) + data

    def final(self, server_first):
        attrs = dict(part.split('=', 1) for part in server_first.decode().split(','))
        assert attrs['r'].startswith(self.nonce), attrs
        salted = hashlib.pbkdf2_hmac('sha256', self.password, base64.b64decode(attrs['s']),
                                     int(attrs['i']))
        client_key = _scram_hmac(salted, b'Client Key')
        without_proof = 'c=biws,r=' + attrs['r']
        auth_msg = ','.join((self.first_bare, server_first.decode(), without_proof)).encode()
        signature = _scram_hmac(hashlib.sha256(client_key).digest(), auth_msg)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.server_signature = _scram_hmac(_scram_hmac(salted, b'Server Key'), auth_msg)
        return (without_proof + ',p=' + base64.b64encode(proof).decode()).encode()

    def check(self, server_final):
        return server_final.decode() == 'v=' + base64.b64encode(self.server_signature).decode()
