"""rawpg: a tiny PostgreSQL v3 protocol client over a raw socket, for tests that need to send
what no driver sends (bad lengths, odd startup packets, pipelines without Sync)."""

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
