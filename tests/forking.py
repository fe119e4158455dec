"""Forking helpers shared by the fork tests (tests/ is on sys.path under pytest)."""

import os
import select
import signal
import time
import warnings


def fork():
    """os.fork(). Python >= 3.12 warns (a DeprecationWarning, an error under our filterwarnings)
    that forking a multi-threaded process may deadlock the child; the kernel thread pool's workers
    make this one multi-threaded, and that deadlock is exactly what these tests check for."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*multi-threaded.*fork", category=DeprecationWarning)
        return os.fork()


def in_child(body, timeout=30.0):
    """Runs body() in an os.fork() child and returns the bytes it returns; raises AssertionError if
    the child fails or has not finished within `timeout` seconds (it is then killed), so a deadlock
    fails the test instead of hanging it. The child leaves with os._exit (no cleanup, as a
    DataLoader worker that crashes would)."""
    r, w = os.pipe()
    pid = fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            data = body()
            os.write(w, len(data).to_bytes(8, "little") + data)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            ready = select.select([r], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"forked child did not finish within {timeout} s (deadlock?)")
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"forked child failed (status {status})"
    n = int.from_bytes(data[:8], "little")
    assert len(data) == 8 + n
    return data[8:]
