"""CI's rule for the whole suite: a skipped test fails the run."""

from __future__ import annotations

import os

import pytest

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: a missing service must never pass unnoticed."""
    if os.environ.get("CI") == "true" and _skipped:
        print(f"\nCI=true: {len(_skipped)} test(s) were skipped, which CI treats as failure:")
        for nodeid in _skipped:
            print(f"  {nodeid}")
        session.exitstatus = 1
