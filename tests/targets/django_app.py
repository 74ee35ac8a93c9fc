"""A Django process shaped like the one issue 33 was found on: DEBUG=True, an sqlite database,
contrib.auth and contenttypes migrated, a view that runs ORM queries and renders a template,
request threads driving it through Django's own handler (django.test.Client), and a report
thread running ORM queries outside any request, so its connection's ``queries`` grows (the DEBUG
leak: Django resets it only when a request starts). The main thread ends blocked in a join.

usage: django_app.py TRUTH_PATH

First every thread does one round of work, then parks (waits on an Event); the truth is the GC
census taken once they all are parked (``_truth.publish_settled``), plus ``queries`` (the length
of the report thread's ``connection.queries``), ``requests`` served and the threads' names.
A thread named ``control`` takes that census, then blocks opening the FIFO TRUTH_PATH + ".serve"
(in C: nothing runs); the main thread waits in a join all along.

Once something opens that FIFO for writing, the process serves: the request threads keep
serving (each request also appends an audit entry to ``AUDIT``: growth) and the report thread
keeps querying, slowly, until the process is killed. The census is not exact from then on.

Needs Django (the web venvs of scripts/provision-venvs.sh).
"""

import os
import sys
import threading
import time

import _truth

TRUTH = sys.argv[1]
SCRATCH = os.path.dirname(os.path.abspath(TRUTH))
REQUEST_THREADS = 3
REQUESTS_EACH = 15
REPORT_QUERIES = 400

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(
    DEBUG=True,
    SECRET_KEY="not-a-secret-test-only",
    ALLOWED_HOSTS=["testserver"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
    MIDDLEWARE=[],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(SCRATCH, "app.sqlite3"),
        }
    },
    TEMPLATES=[
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    (
                        "django.template.loaders.locmem.Loader",
                        {
                            "users.html": "<ul>{% for u in users %}<li>{{ u.username }} "
                            "({{ u.email }}) {{ u.groups.count }}</li>{% endfor %}</ul>"
                            "<p>{{ total }} users, {{ staff }} staff</p>"
                        },
                    )
                ]
            },
        }
    ],
    USE_TZ=True,
)
django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.shortcuts import render  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import path  # noqa: E402

AUDIT = []


def user_list(request):
    first = int(request.GET.get("from", "0"))
    users = list(User.objects.filter(id__gt=first).order_by("id")[:10])
    staff = User.objects.filter(is_staff=True).count()
    if SERVE.is_set():
        AUDIT.append({"path": request.path, "from": first, "users": [u.id for u in users]})
    return render(request, "users.html", {"users": users, "total": User.objects.count(), "staff": staff})


urlpatterns = [path("users/", user_list)]


def setup_database():
    call_command("migrate", verbosity=0, interactive=False)
    staff = Group.objects.create(name="staff")
    for i in range(40):
        u = User.objects.create(username="user%d" % i, email="user%d@example.invalid" % i, is_staff=i % 4 == 0)
        if u.is_staff:
            u.groups.add(staff)
    connection.close()


def request_worker(n, done):
    client = Client()
    for i in range(REQUESTS_EACH):
        response = client.get("/users/", {"from": str((n * 7 + i) % 30)})
        assert response.status_code == 200, response.status_code
    SERVED[n] = REQUESTS_EACH
    done.set()
    SERVE.wait()
    i = 0
    while True:
        client.get("/users/", {"from": str((n * 7 + i) % 30)})
        i += 1


def report_worker(done):
    # A job outside the request cycle: nothing resets this thread's connection.queries.
    for i in range(REPORT_QUERIES):
        User.objects.filter(username="user%d" % (i % 40)).exists()
    STATE["queries"] = len(connection.queries)
    done.set()
    SERVE.wait()
    while True:
        User.objects.filter(username="user%d" % (i % 40)).exists()
        i += 1
        time.sleep(0.01)


def control_worker(fifo, threads, done):
    """Publishes the truth once the others are parked, then blocks in open(2) until the test
    opens the FIFO for writing. The census is taken here, not in the main thread: the main
    thread's join holds an argument tuple for as long as it blocks (lock.acquire(True, -1) on
    3.8-3.12), which a census taken before the join would miss."""
    for d in done:
        d.wait()
    wait_parked(threads + [threading.main_thread()])
    fields = {
        "queries": STATE["queries"],
        "requests": sum(SERVED.values()),
        "threads": ["MainThread"] + [t.name for t in threads] + ["control"],
    }
    d = None
    _truth.publish_settled(TRUTH, fields)
    fd = os.open(fifo, os.O_RDONLY)
    os.close(fd)
    SERVE.set()


SERVED = {}
STATE = {}
SERVE = threading.Event()


def wait_parked(threads):
    """Until every worker blocks in Condition.wait (under SERVE.wait()) and the main thread in
    its join, the same line twice in a row: the census must not race a thread still running on
    after its done.set()."""
    last = None
    while True:
        frames = sys._current_frames()
        now = []
        for t in threads:
            f = frames.get(t.ident)
            now.append(None if f is None else (f.f_code.co_name, f.f_lineno, f.f_back and f.f_back.f_code.co_name))
        f = frames = None
        joins = ("_wait_for_tstate_lock", "join")
        parked = all(x is not None and (x[0] in joins or x[0] == x[2] == "wait") for x in now)
        if now == last and parked:
            return
        last = now
        time.sleep(0.05)


def main():
    setup_database()
    fifo = TRUTH + ".serve"
    os.mkfifo(fifo)
    done = [threading.Event() for _ in range(REQUEST_THREADS + 1)]
    threads = [
        threading.Thread(target=request_worker, args=(n, done[n]), name="request-%d" % n, daemon=True)
        for n in range(REQUEST_THREADS)
    ]
    threads.append(threading.Thread(target=report_worker, args=(done[-1],), name="nightly-report", daemon=True))
    control = threading.Thread(target=control_worker, args=(fifo, list(threads), done), name="control", daemon=True)
    for t in threads + [control]:
        t.start()
    # What the program does from here on: wait for its workers, forever.
    threads[0].join()


main()
