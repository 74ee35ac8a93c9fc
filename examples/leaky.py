"""A small service loop with a memory leak, to watch with pymemspy.

    pymemspy record --duration 10 -o demo.json -- python3 examples/leaky.py

Every simulated request parses its payload into temporary dicts and lists (churn: freed when
the request is done) and renders a response. Rendering is memoised in a module-level dict, but
the cache key includes the request's timestamp, so no entry is ever hit again and none is ever
evicted: the cache grows by one Response (and its headers dict) per request, forever.
Runs until interrupted (Ctrl-C) or terminated.
"""

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
    # Temporary structures that die with the request.
    fields = [part.split("=") for part in request.body.split("&")]
    return {"user": request.user_id, "fields": dict(fields), "path": request.path.split("/")}


def render(request, parsed):
    # The bug: received_at makes every key unique, so the cache only ever grows.
    key = (request.user_id, request.path, request.received_at)
    cached = _RENDER_CACHE.get(key)
    if cached is not None:
        return cached
    body = "hello %s: %d fields" % (parsed["user"], len(parsed["fields"]))
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
        time.sleep(0.05)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
