#!/usr/bin/env python3
"""Serves a gsmile command worker over HTTP, for `kind = "http"` bundles (standard library only).

    python3 examples/workers/http_server.py --port 8000 -- \
        python3 examples/workers/onnx_worker.py --bundle onnx/tiny-editor

starts the worker once and answers each POST to any path with the worker's reply to the
request body (one protocol message as JSON; see README.md, "Explaining an editor behind an
API"). Requests reach the worker one at a time. It listens on 127.0.0.1 only; `--port 0`
picks a free port. The first line on stdout is `listening on http://127.0.0.1:PORT/`.
`--token-env VAR` makes it refuse requests whose `Authorization` header is not
`Bearer $VAR`; `--idle-exit S` stops it after S seconds without a request.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Worker:
    """A command worker process, spoken to one message at a time."""

    def __init__(self, command):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lock = threading.Lock()

    def call(self, body):
        with self.lock:
            self.process.stdin.write(json.dumps(json.loads(body)) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker exited ({self.process.poll()})")
        return line.encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--token-env", help="environment variable holding the bearer token clients must send")
    ap.add_argument("--idle-exit", type=float, default=0, help="stop after this many seconds without a request (0: never)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the worker's command line")
    a = ap.parse_args()
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not command:
        ap.error("give the worker's command after --")
    token = os.environ[a.token_env] if a.token_env else None
    worker = Worker(command)
    last = [time.monotonic()]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            last[0] = time.monotonic()
            if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                return self.reply(401, b'{"error": "missing or wrong bearer token"}')
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                self.reply(200, worker.call(body))
            except Exception as e:
                self.reply(500, json.dumps({"error": str(e)}).encode())

        def reply(self, status, data):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    if a.idle_exit > 0:

        def watch():
            while time.monotonic() - last[0] < a.idle_exit:
                time.sleep(0.2)
            server.shutdown()

        threading.Thread(target=watch, daemon=True).start()
    try:
        server.serve_forever()
    finally:
        worker.process.stdin.close()
        worker.process.wait(timeout=10)


if __name__ == "__main__":
    main()
