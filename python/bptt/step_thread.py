"""The thread a `bptt train` run computes its steps on, so that its main thread, waiting for each
step, takes a signal at once: a call of the core runs to its end without the GIL, and a signal
handler runs only when the main thread is back in Python, which, had it made the call, could be
minutes later (a long sequence under a tight memory budget). One thread for the whole run keeps
the core's scratch memory from step to step (the core keeps it per thread)."""

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

Result = TypeVar("Result")


class StepThread:
    """Runs functions one at a time on a daemon thread (one that never holds up the process's
    exit: a run stopped at once ends without waiting for its step)."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="bptt-train-steps", daemon=True)
        self._thread.start()

    def run(self, function: Callable[[], Result]) -> Result:
        """function() on the thread; its result or its exception here. The wait takes signals:
        a handler that raises (a second Ctrl-C) ends it at once, the function still running."""
        done: Future = Future()
        self._calls.put((function, done))
        return done.result()

    def close(self) -> None:
        """Ends the thread after the function it runs, if any, without waiting for it."""
        self._calls.put(None)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            function, done = call
            try:
                done.set_result(function())
            except BaseException as error:  # noqa: BLE001  (handed to the waiting thread)
                done.set_exception(error)
