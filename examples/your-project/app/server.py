"""A small service of the kind soak is for: an HTTP API with a worker process.

GET /health answers "ok" while the worker is alive; GET /work asks the worker
(over a pipe) and answers what it says. On SIGTERM it stops the worker and
exits 0. With YOUR_PROJECT_BUG=orphan-worker the worker does not die with the
API when the API is killed, the bug `scenarios/kill-app.toml` catches.
"""

import ctypes
import http.server
import multiprocessing
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def worker(conn):
    if os.environ.get("YOUR_PROJECT_BUG") != "orphan-worker":
        # Die with the API, whatever kills it.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:
            sys.exit(0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        try:
            n = conn.recv()
        except EOFError:
            if os.environ.get("YOUR_PROJECT_BUG") == "orphan-worker":
                signal.pause()
            return
        conn.send(f"done {n}")


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1])
    here, there = multiprocessing.Pipe()
    child = multiprocessing.Process(target=worker, args=(there,), daemon=False)
    child.start()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/health":
                ok = child.is_alive()
                self.reply(200 if ok else 503, "ok" if ok else "worker gone")
            elif self.path == "/work":
                here.send(1)
                self.reply(200, here.recv() if here.poll(2) else "worker silent")
            else:
                self.reply(404, "not found")

        def reply(self, status, text):
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)

    def stop(*_):
        child.terminate()
        child.join(5)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
