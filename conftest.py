"""Loaded by pytest before Django is configured: local defaults for the test run.

DEBUG=true only lets settings generate a SECRET_KEY under var/; pytest-django still runs
every test with DEBUG off, as production does.
"""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "true")
