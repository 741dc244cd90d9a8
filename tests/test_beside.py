"""gate.beside: a read running beside the caller's work, errors in the caller's order."""
from __future__ import annotations

import threading
import time

import pytest

from gate.beside import beside


def test_result_is_the_functions_value_and_both_ran_at_once():
    started = threading.Event()

    def other():
        started.set()
        return 42

    with beside(other) as pending:
        assert started.wait(5)      # running while the block still is
    assert pending.result() == 42


def test_its_error_is_raised_where_the_result_is_asked_for():
    def other():
        raise ValueError("rows are malformed")

    with beside(other) as pending:
        here = "the block finishes first"
    assert here
    with pytest.raises(ValueError, match="rows are malformed"):
        pending.result()


def test_the_blocks_error_wins_and_waits_for_the_other_to_finish():
    finished = []

    def other():
        time.sleep(0.2)
        finished.append(True)
        raise ValueError("second")

    with pytest.raises(RuntimeError, match="first"):
        with beside(other):
            raise RuntimeError("first")
    assert finished == [True]       # its files are complete before the caller cleans up


def test_an_interrupt_does_not_wait_for_a_stuck_read():
    release = threading.Event()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with beside(lambda: release.wait(30)):
            raise KeyboardInterrupt
    assert time.monotonic() - start < 5
    release.set()
