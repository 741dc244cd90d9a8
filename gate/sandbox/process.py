"""Run the sandbox: feed it its input, read a bounded answer and the end of its stderr,
and kill its whole process group when it runs past the wall time or writes too much."""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: bytes
    stderr: bytes                   # its last bytes only
    timed_out: bool = False         # killed by the parent at the wall time
    overflowed: bool = False        # killed by the parent: too much on stdout
    seconds: float = 0.0            # from its start to its end


def spawn(argv: list[str], preexec: Callable[[], None]) -> subprocess.Popen[bytes]:
    """Started now, fed and read by `finish`: it can load its model meanwhile."""
    # its own session: one killpg stops bwrap, and --die-with-parent takes everything
    # inside with it
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=preexec,
                            start_new_session=True, close_fds=True)


def finish(proc: subprocess.Popen[bytes], data: bytes, *, started: float,
           wall_seconds: float, output_bytes: int, stderr_bytes: int) -> Finished:
    """Its input written, its answer read; killed `wall_seconds` from now (what it did
    before it was asked is bounded by its CPU limit, and by the caller's own work)."""
    pipes = _Pipes(proc, data, output_bytes, stderr_bytes)
    deadline = time.monotonic() + wall_seconds
    timed_out = pipes.pump(deadline)
    if timed_out or pipes.overflowed:
        kill(proc)
    try:
        returncode = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        # both pipes closed, yet it runs on (a grandchild keeping no pipe open)
        kill(proc)
        returncode = proc.wait()
        timed_out = True
    return Finished(returncode, bytes(pipes.out), bytes(pipes.err), timed_out,
                    pipes.overflowed, time.monotonic() - started)


class _Pipes:
    """stdin written and stdout/stderr read as each is ready, as communicate() does, but
    with stdout capped (the parent's memory is not the model's to fill) and stderr
    kept as a tail."""

    def __init__(self, proc: subprocess.Popen[bytes], data: bytes, output_bytes: int,
                 stderr_bytes: int) -> None:
        assert proc.stdin and proc.stdout and proc.stderr
        self.selector = selectors.DefaultSelector()
        self.data = memoryview(data)
        self.stdin, self.stdout, self.stderr = proc.stdin, proc.stdout, proc.stderr
        self.out = bytearray()
        self.err = bytearray()
        self.output_bytes, self.stderr_bytes = output_bytes, stderr_bytes
        self.overflowed = False
        if self.data:
            os.set_blocking(self.stdin.fileno(), False)
            self.selector.register(self.stdin, selectors.EVENT_WRITE)
        else:
            self.stdin.close()
        self.selector.register(self.stdout, selectors.EVENT_READ)
        self.selector.register(self.stderr, selectors.EVENT_READ)

    def pump(self, deadline: float) -> bool:
        """Until both outputs close; True when the deadline came first."""
        try:
            while self.selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                for key, _ in self.selector.select(timeout=left):
                    if key.fileobj is self.stdin:
                        self._write()
                    else:
                        self._read(key.fileobj is self.stdout)
                    if self.overflowed:
                        return False
            return False
        finally:
            for handle in (self.stdin, self.stdout, self.stderr):
                handle.close()
            self.selector.close()

    def _write(self) -> None:
        try:
            written = os.write(self.stdin.fileno(), self.data[:CHUNK])
        except BlockingIOError:
            return
        except BrokenPipeError:
            written = len(self.data)    # it stopped reading: its exit will say why
        self.data = self.data[written:]
        if not self.data:
            self.selector.unregister(self.stdin)
            self.stdin.close()

    def _read(self, is_stdout: bool) -> None:
        handle = self.stdout if is_stdout else self.stderr
        chunk = os.read(handle.fileno(), CHUNK)
        if not chunk:
            self.selector.unregister(handle)
            return
        if is_stdout:
            self.out += chunk
            if len(self.out) > self.output_bytes:
                self.overflowed = True
                del self.out[self.output_bytes:]
        else:
            self.err += chunk
            del self.err[:max(0, len(self.err) - self.stderr_bytes)]


def kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
