"""A small service loop with a memory leak, to watch with pymemspy.

    pymemspy record --duration 10 -o demo.svg -- python3 scripts/demo/leaky.py

Every simulated request parses its payload into temporary dicts and lists (churn: freed when
the request is done) and renders a response. Rendering is memoised in a module-level dict, but
the cache key includes the request's timestamp, so no entry is ever hit again and none is ever
evicted: the cache grows by one Response (and its headers dict) per request, forever.
Runs until interrupted (Ctrl-C) or terminated.
"""

import json
import random
import time

_RENDER_CACHE = {}


class Request:
    def __init__(self, user_id, path, body):
        self.user_id = user_id
        self.path = path
        self.body = body
        self.received_at = time.time()


class Response:
    def __init__(self, status, body, headers):
        self.status = status
        self.body = body
        self.headers = headers


def parse(request):
    # Temporary structures that die with the request (and take a little CPU, like real parsing).
    fields = [part.split("=") for part in request.body.split("&")]
    for _ in range(5):
        doc = json.loads(json.dumps({"fields": fields, "path": request.path}))
    return {"user": request.user_id, "fields": dict(fields), "path": doc["path"].split("/")}


def render(request, parsed):
    # The bug: received_at makes every key unique, so the cache only ever grows.
    key = (request.user_id, request.path, request.received_at)
    cached = _RENDER_CACHE.get(key)
    if cached is not None:
        return cached
    body = "hello %s: %d fields" % (parsed["user"], len(parsed["fields"]))
    # Rendering takes a while too: a template with a few hundred lines.
    lines = ["<li>%s=%s</li>" % (k, v) for k, v in sorted(parsed["fields"].items()) for _ in range(150)]
    body += "".join(lines)[:200]
    response = Response(200, body, {"content-type": "text/plain", "x-user": str(request.user_id)})
    _RENDER_CACHE[key] = response
    return response


def handle(request):
    parsed = parse(request)
    return render(request, parsed)


def main():
    rng = random.Random(7)
    paths = ["/profile", "/orders", "/cart", "/search"]
    while True:
        # A burst of requests, then a short pause, like a lightly loaded server.
        for _ in range(rng.randint(5, 40)):
            body = "&".join("k%d=v%d" % (i, rng.randint(0, 99)) for i in range(rng.randint(1, 12)))
            handle(Request(rng.randint(1, 500), rng.choice(paths), body))
        time.sleep(0.01)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
