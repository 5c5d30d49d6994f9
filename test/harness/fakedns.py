"""fakedns: a DNS server on a loopback UDP port for tests of pgtally's resolver (resolv_conf).

It answers A queries from a table of names, AAAA queries with no address, and NXDOMAIN for a
name it does not know; it counts the queries it got, and can hold a name's answers until the
test lets them go. The question is echoed as it came (libevent randomizes the case of names).
"""

import os
import socket
import struct
import threading


class FakeDns:
    def __init__(self, records):
        self.records = {k.lower(): list(v) for k, v in records.items()}
        self.queries = {}       # (name, 'A' or 'AAAA') -> count
        self.held = {}          # name -> threading.Event: answer once it is set
        self.asked = threading.Event()  # set at each query
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def resolv_conf(self, directory):
        """A resolv.conf naming this server (libevent takes ip:port there)."""
        path = os.path.join(directory, 'resolv.conf')
        with open(path, 'w') as f:
            f.write('nameserver 127.0.0.1:%d\noptions timeout:5 attempts:1\n' % self.port)
        return path

    def hold(self, name):
        ev = threading.Event()
        self.held[name.lower()] = ev
        return ev

    def count(self, name, qtype='A'):
        with self.lock:
            return self.queries.get((name.lower(), qtype), 0)

    def stop(self):
        self.stopping = True
        for ev in self.held.values():
            ev.set()
        self.sock.close()

    def _serve(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            threading.Thread(target=self._answer, args=(data, peer), daemon=True).start()

    def _answer(self, data, peer):
        if len(data) < 12:
            return
        qid, _flags, qdcount = struct.unpack('!HHH', data[:6])
        if qdcount != 1:
            return
        pos, labels = 12, []
        while pos < len(data) and data[pos] != 0:
            n = data[pos]
            labels.append(data[pos + 1:pos + 1 + n].decode('ascii', 'replace'))
            pos += 1 + n
        pos += 1
        if pos + 4 > len(data):
            return
        qtype = struct.unpack('!H', data[pos:pos + 2])[0]
        question = data[12:pos + 4]
        name = '.'.join(labels).lower()
        kind = {1: 'A', 28: 'AAAA'}.get(qtype, str(qtype))
        with self.lock:
            self.queries[(name, kind)] = self.queries.get((name, kind), 0) + 1
        self.asked.set()
        if name in self.held:
            self.held[name].wait(30)
        addrs = self.records.get(name)
        answers = b''
        if addrs is not None and kind == 'A':
            for a in addrs:
                answers += struct.pack('!HHHIH', 0xC00C, 1, 1, 5, 4) + socket.inet_aton(a)
        rcode = 0 if addrs is not None else 3  # NXDOMAIN
        header = struct.pack('!HHHHHH', qid, 0x8180 | rcode, 1,
                             len(addrs) if addrs is not None and kind == 'A' else 0, 0, 0)
        try:
            self.sock.sendto(header + question + answers, peer)
        except OSError:
            pass
