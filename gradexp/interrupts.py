"""Turn SIGINT (Ctrl-C) and SIGTERM into a request the training loop answers at the end of a step.

A handler only records which signal came; the loop reads that once per step (one attribute
read), so a step is never cut in half. The first signal also puts the previous handlers back,
so a second Ctrl-C stops the process at once, the way it would without gradexp.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any, Optional

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """While entered (in the main thread), SIGINT and SIGTERM set `received` instead of ending the process.

    Outside the main thread Python cannot install signal handlers; there `received` stays None
    and signals behave as usual.
    """

    def __init__(self) -> None:
        self.received: Optional[signal.Signals] = None
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._record) for number in STOP_SIGNALS}
        return self

    def __exit__(self, kind: Optional[type[BaseException]], error: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        self._restore()

    def _record(self, number: int, frame: Optional[FrameType]) -> None:
        self.received = signal.Signals(number)
        self._restore()

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            # None: the previous handler was not installed from Python; the default is the best stand-in.
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        self._previous = {}
