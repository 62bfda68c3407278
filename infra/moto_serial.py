"""moto's server, handling one request at a time.

DynamoDB applies a conditional write atomically. moto's threaded server does not: it checks a
condition and applies the write later without a lock, so concurrent conditional updates can both
pass (seen: 4 assignments for an agent of capacity 3). Serialising requests restores the property
our concurrency tests assert, while keeping keep-alive connections on threads.

FIFO order after a failed batch: moto keeps a received message "pending" (its group in flight)
until a receive finds it visible again, and re-reads the pending groups as it meets each such
message. When several messages of one group became visible again (a batch's failure and the
messages held back behind it), the first one met is skipped because the later ones still look in
flight, and a later one is delivered first: out of order, which SQS never does. Before each
receive, every message visible again is taken out of the pending set, as SQS sees it.

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
from moto.sqs.models import SQSBackend

_receive_message = SQSBackend.receive_message


def receive_message(self, queue_name, *args, **kwargs):
    queue = self.get_queue(queue_name)
    for message in [m for m in queue.pending_messages if m.visible]:
        queue.pending_messages.remove(message)
    return _receive_message(self, queue_name, *args, **kwargs)


SQSBackend.receive_message = receive_message

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()


def serial(environ, start_response):
    with lock:
        # Consume the response inside the lock: the request is done when its body is built.
        return list(app(environ, start_response))


run_simple(host, port, serial, threaded=True, request_handler=MotoRequestHandler)
