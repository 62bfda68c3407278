"""moto's server, handling one request at a time.

DynamoDB applies a conditional write atomically. moto's threaded server does not: it checks a
condition and applies the write later without a lock, so concurrent conditional updates can both
pass (seen: 4 assignments for an agent of capacity 3). Serialising requests restores the property
our concurrency tests assert, while keeping keep-alive connections on threads.

Usage: python moto_serial.py HOST PORT
"""
import os
import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()


def serial(environ, start_response):
    with lock:
        # Consume the response inside the lock: the request is done when its body is built.
        return list(app(environ, start_response))


run_simple(host, port, serial, threaded=True, request_handler=MotoRequestHandler)
