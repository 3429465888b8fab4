"""Ctrl-C during training: finish the epochs under way, save, then stop."""

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def deferred_sigint() -> Iterator[Callable[[], bool]]:
    """Defer SIGINT within the block; yields a function telling whether one arrived.

    The first SIGINT only sets the flag (the caller saves and stops at its next safe point);
    it also puts the previous handler back, so a second Ctrl-C interrupts at once. Outside the
    main thread signals cannot be handled, and the flag stays false.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None:  # installed outside Python: fall back to the default behaviour
        previous = signal.default_int_handler
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGINT, previous)
