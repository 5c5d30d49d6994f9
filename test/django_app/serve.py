"""serve: serves the test project over HTTP with wsgiref, for the end-to-end tests.

    python3 -m django_app.serve [--port N] [--single-thread]

(run from test/ or with test/ on PYTHONPATH; settings from the environment, see settings.py).
Prints "listening on 127.0.0.1:PORT" once it accepts requests (--port 0, the default, picks a
free port). By default each request runs in its own thread, as under most WSGI servers;
--single-thread serves them one after another on one thread, so that a persistent database
connection (CONN_MAX_AGE) really is reused by the next request.
"""

import argparse
import os
import signal
import socketserver
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--single-thread', action='store_true')
    args = parser.parse_args()

    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'django_app.settings')
    from django.core.wsgi import get_wsgi_application
    app = get_wsgi_application()

    server_class = WSGIServer if args.single_thread else ThreadingWSGIServer
    httpd = make_server('127.0.0.1', args.port, app, server_class=server_class,
                        handler_class=QuietHandler)
    # SIGTERM ends serve_forever() the same way as Ctrl-C, closing the listening socket.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print('listening on 127.0.0.1:%d' % httpd.server_port, flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        # Close this thread's persistent connection properly instead of just dropping it.
        from django.db import connections
        connections.close_all()
    return 0


if __name__ == '__main__':
    sys.exit(main())
