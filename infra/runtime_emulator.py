"""A minimal AWS Lambda Runtime API emulator that measures a `bootstrap` binary.

It serves /2018-06-01/runtime/* on 127.0.0.1 (a free port), starts the binary with
AWS_LAMBDA_RUNTIME_API pointing at itself, and measures:

  init   the time from just before the exec of the binary (fork + exec included) to its first
         `GET /2018-06-01/runtime/invocation/next`, over N fresh processes (median, min, max);
         each process is killed once its first `next` arrived (that `next` is answered with an
         empty event only in `invoke` mode).
  invoke one invocation: the first `next` is answered with EVENT, the emulator waits for the
         response (or error), then reads VmHWM (peak RSS) and VmRSS from /proc/PID/status while
         the function waits on its second `next` (held open), and kills it.

`--unreachable` replaces every endpoint the function may call (AWS_ENDPOINT_URL, LINE_API_BASE,
LINE_DATA_API_BASE) with an unreachable one, so that a network call during init shows up:
`tarpit` is a TCP listener that accepts connections and never answers (a silent network; the
connections are counted), `refused` a closed port (connection refused at once).

    python runtime_emulator.py init   BOOTSTRAP --env-file F [--runs 20] [--timeout 10]
                                      [--unreachable tarpit|refused]
    python runtime_emulator.py invoke BOOTSTRAP --env-file F --event EVENT.json [--timeout 30]

Prints one JSON object on stdout. Standard library only; Linux (reads /proc).
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class Emulator:
    def __init__(self):
        self.lock = threading.Condition()
        self.reset(None)
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                now = time.perf_counter_ns()
                if self.path != PREFIX + "/invocation/next":
                    return self.reply(404, b'{"errorMessage":"not found"}')
                with emulator.lock:
                    emulator.next_calls += 1
                    first = emulator.next_calls == 1
                    if first:
                        emulator.first_next_ns = now
                        emulator.lock.notify_all()
                    event = emulator.event if first else None
                if event is None:
                    # Hold the request (the function idles here) until the process is killed.
                    emulator.hold.wait(timeout=120)
                    return
                request_id = str(uuid.uuid4())
                with emulator.lock:
                    emulator.request_id = request_id
                deadline = int(time.time() * 1000) + 30_000
                self.reply(200, event, {
                    "content-type": "application/json",
                    "lambda-runtime-aws-request-id": request_id,
                    "lambda-runtime-deadline-ms": str(deadline),
                    "lambda-runtime-invoked-function-arn":
                        "arn:aws:lambda:ap-northeast-1:123456789012:function:emulated",
                    "lambda-runtime-trace-id":
                        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
                })

            def do_POST(self):
                now = time.perf_counter_ns()
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                kind = None
                if self.path.startswith(PREFIX + "/invocation/"):
                    kind = "response" if self.path.endswith("/response") else "error"
                elif self.path == PREFIX + "/init/error":
                    kind = "init-error"
                self.reply(202, b'{"status":"OK"}', {"content-type": "application/json"})
                with emulator.lock:
                    emulator.result = (kind, body, now)
                    emulator.lock.notify_all()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self, event):
        self.next_calls = 0
        self.first_next_ns = None
        self.event = event
        self.request_id = None
        self.result = None
        self.hold = threading.Event()

    def wait(self, predicate, timeout):
        """Waits until predicate() holds (re-checked on every notification and every 10 ms, as
        a process exit notifies nobody); returns whether it holds."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.lock.wait(min(remaining, 0.01))
            return True


class Tarpit:
    """Accepts TCP connections and never answers; counts them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.held = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.held.append(conn)

    def take(self):
        n, self.connections = self.connections, 0
        for c in self.held:
            c.close()
        self.held = []
        return n


def read_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return env


def function_env(base, emulator, name):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": ":UTC"}
    env.update(base)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{emulator.port}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "emulated",
        "_HANDLER": "bootstrap",
    })
    return env


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                fields[key] = int(value.split()[0])  # kB
    return fields


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


def one_run(emulator, bootstrap, env, timeout, event=None, log=None):
    emulator.reset(event)
    t0 = time.perf_counter_ns()
    proc = subprocess.Popen([bootstrap], env=env, stdin=subprocess.DEVNULL,
                            stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        reached = emulator.wait(lambda: emulator.first_next_ns is not None or emulator.result
                                is not None or proc.poll() is not None, timeout)
        t_end = time.perf_counter_ns()
        init_ms = (emulator.first_next_ns - t0) / 1e6 if emulator.first_next_ns else None
        out = {"init_ms": init_ms, "reached_next": emulator.first_next_ns is not None,
               "exit_code": proc.poll()}
        if not reached or emulator.first_next_ns is None:
            out["gave_up_or_exited_after_ms"] = round((t_end - t0) / 1e6, 1)
            if emulator.result and emulator.result[0] == "init-error":
                out["init_error"] = emulator.result[1].decode("utf-8", "replace")[:500]
            return out
        if event is None:
            return out
        emulator.wait(lambda: emulator.result is not None or proc.poll() is not None, timeout)
        emulator.wait(lambda: emulator.next_calls >= 2 or proc.poll() is not None, 5)
        if emulator.result is None:
            out["error"] = f"no response (exit code {proc.poll()})"
            return out
        kind, body, t_done = emulator.result
        out["invocation"] = kind
        out["invoke_ms"] = (t_done - emulator.first_next_ns) / 1e6
        try:
            out["response"] = json.loads(body)
        except ValueError:
            out["response"] = body.decode("utf-8", "replace")[:2000]
        if proc.poll() is None:
            out.update({k + "_kB": v for k, v in proc_status(proc.pid).items()})
        return out
    finally:
        emulator.hold.set()
        stop(proc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["init", "invoke"])
    parser.add_argument("bootstrap")
    parser.add_argument("--env-file", required=True)
    parser.add_argument("--name", default=None, help="AWS_LAMBDA_FUNCTION_NAME")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--unreachable", choices=["tarpit", "refused"],
                        help="point AWS_ENDPOINT_URL and the LINE bases at an unreachable endpoint")
    parser.add_argument("--event", help="event file (invoke mode)")
    parser.add_argument("--log", help="append the function's output to this file")
    args = parser.parse_args()

    bootstrap = os.path.abspath(args.bootstrap)
    name = args.name or os.path.basename(os.path.dirname(bootstrap))
    emulator = Emulator()
    base = read_env_file(args.env_file)
    tarpit = None
    if args.unreachable == "tarpit":
        tarpit = Tarpit()
        port = tarpit.port
    elif args.unreachable == "refused":
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
    if args.unreachable:
        for key in ("AWS_ENDPOINT_URL", "LINE_API_BASE", "LINE_DATA_API_BASE"):
            base[key] = f"http://127.0.0.1:{port}"
    env = function_env(base, emulator, name)
    log = open(args.log, "ab") if args.log else None

    if args.mode == "init":
        runs = []
        for _ in range(args.runs):
            run = one_run(emulator, bootstrap, env, args.timeout, log=log)
            if tarpit:
                run["connections_during_init"] = tarpit.take()
            runs.append(run)
        times = [r["init_ms"] for r in runs if r["init_ms"] is not None]
        result = {
            "function": name, "mode": "init", "unreachable": args.unreachable, "runs": len(runs),
            "reached_next": sum(r["reached_next"] for r in runs),
            "median_ms": round(statistics.median(times), 2) if times else None,
            "min_ms": round(min(times), 2) if times else None,
            "max_ms": round(max(times), 2) if times else None,
            "samples_ms": [round(t, 2) for t in times],
        }
        if tarpit:
            result["connections_during_init"] = [r["connections_during_init"] for r in runs]
        failures = [r for r in runs if not r["reached_next"]]
        if failures:
            result["first_failure"] = failures[0]
    else:
        if not args.event:
            parser.error("invoke needs --event")
        with open(args.event, "rb") as f:
            event = f.read()
        run = one_run(emulator, bootstrap, env, args.timeout, event=event, log=log)
        result = {"function": name, "mode": "invoke", **run}
        if tarpit:
            result["connections"] = tarpit.take()
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
