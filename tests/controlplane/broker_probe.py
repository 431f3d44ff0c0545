"""A Celery app for the embedded broker's tests: the control plane's broker settings, one task.

The worker it runs is a real `celery worker` process on the same transport and options as
the control plane's (read from controlplane.settings with CDN_VAR_DIR pointing at the test's
folder); its task only appends a token to PROBE_RECORD, so a test can count deliveries
without a database or an edge.
"""

from __future__ import annotations

import os

from celery import Celery

from controlplane import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

broker.register()
app = Celery("broker_probe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.beat_schedule = {}


@app.task(name="broker_probe.record")
def record(token: str) -> None:
    # One short O_APPEND write per call: lines from the worker's threads never interleave.
    with open(os.environ["PROBE_RECORD"], "a") as out:
        out.write(token + "\n")
