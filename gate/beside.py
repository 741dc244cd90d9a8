"""Run one read beside another: requests wait on the server, not on this process.

MLflow's client makes one request at a time; a server with several workers can answer
two. `beside` starts a function in a daemon thread and hands back its result later, so
the caller's own work (a model downloading and loading) overlaps it.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Pending(Generic[T]):
    """The outcome of a function running in another thread."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._fn = fn
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to whoever asks for the result
            self._error = exc
        finally:
            self._done.set()

    def wait(self) -> None:
        self._done.wait()

    def result(self) -> T:
        """Its value, or its exception raised here."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value      # type: ignore[return-value]


@contextlib.contextmanager
def beside(fn: Callable[[], T]) -> Iterator[Pending[T]]:
    """`fn` runs while the block does; on leaving, it has finished, so files it writes
    into the block's folders are complete. The block's own error comes first: the
    other one waits in `result()`, never asked for. On Ctrl-C nothing waits (the
    thread is a daemon and dies with the process)."""
    pending = Pending(fn)
    threading.Thread(target=pending.run, name="gate-beside", daemon=True).start()
    try:
        yield pending
    except Exception:
        pending.wait()
        raise
    pending.wait()
