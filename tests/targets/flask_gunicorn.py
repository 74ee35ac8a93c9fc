"""A gunicorn master with sync workers serving a small Flask app, as issue 33's program ran.

usage: flask_gunicorn.py TRUTH_PATH [WORKERS]

The process is gunicorn's own master (gunicorn.app.base.BaseApplication, the embedding its
documentation describes), bound to a free loopback port. Once it listens, the master publishes
the truth: {"port", "master", "workers"} where workers is the number it forks; each worker, once
initialised, writes its pid to TRUTH_PATH + ".worker.<pid>". The test then sends requests
(``GET /items/N``); between requests a sync worker waits in select() on the listening socket.

Needs Flask and gunicorn (the web venvs of scripts/provision-venvs.sh).
"""

import json
import os
import sys

from flask import Flask, jsonify
from gunicorn.app.base import BaseApplication

TRUTH = sys.argv[1]
WORKERS = int(sys.argv[2]) if len(sys.argv) > 2 else 2

app = Flask("flask_gunicorn")


@app.route("/items/<int:n>")
def items(n):
    rows = [{"id": i, "name": "item-%d" % i, "tags": ["a", "b"][: i % 3]} for i in range(n)]
    return jsonify(count=len(rows), rows=rows)


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def when_ready(server):
    port = server.LISTENERS[0].sock.getsockname()[1]
    write(TRUTH, json.dumps({"port": port, "master": os.getpid(), "workers": WORKERS}))


def post_worker_init(worker):
    write("%s.worker.%d" % (TRUTH, os.getpid()), str(os.getpid()))


class Server(BaseApplication):
    def load_config(self):
        for key, value in {
            "bind": "127.0.0.1:0",
            "workers": WORKERS,
            "worker_class": "sync",
            "timeout": 30,
            "loglevel": "warning",
            "when_ready": when_ready,
            "post_worker_init": post_worker_init,
        }.items():
            self.cfg.set(key, value)

    def load(self):
        return app


if __name__ == "__main__":
    Server().run()
