"""Run one coroutine on an event loop of our own, and take that loop down on every way out.

run_probe() and calibrate() create a loop (timing.new_probe_loop), run the probe on it in the calling
thread, and must leave nothing behind however the run ends. Before this module, Ctrl-C (and SIGTERM,
which the harness turns into KeyboardInterrupt) raised out of run_until_complete() with the probe's
tasks still pending; the loop was then closed under them, and when their coroutines were collected
stderr showed "Task was destroyed but it is pending!" and "RuntimeError: Event loop is closed" (a
pending `finally` calling into the closed loop). The SCHED_FIFO priority, timer slack and paused
garbage collector the probe sets for itself were not restored either.

Two rules:

* Interrupts arrive as cancellation. While the loop runs in the main thread, SIGINT and SIGTERM
  handlers that are Python functions (Python's own KeyboardInterrupt for Ctrl-C, the pytest plugin's
  SIGTERM-as-KeyboardInterrupt) are wrapped: the handler still runs at once, but what it raises is
  held, the coroutine is cancelled through the loop, so it unwinds at an `await` through its own
  `finally` blocks (requests cancelled, connections closed, scheduling and gc settings restored), and
  the held exception is raised to the caller once the loop is closed. Raised where the signal lands,
  the exception could instead hit the loop's own bookkeeping between two callbacks or a request task,
  and leave a task that can never finish or an exception nobody retrieves. A second signal while the
  probe unwinds is delivered at once (the user insists). SIG_DFL and SIG_IGN are left alone.
* Teardown, also on every other way out (an exception, a KeyboardInterrupt raised some other way):
  every task still pending is cancelled and awaited (bounded by TEARDOWN_TIMEOUT_S), async generators
  and the default executor are shut down, and the loop is closed exactly once.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Cancelled tasks normally finish within a loop iteration or two; this only bounds a task that
# ignores its cancellation (or an executor thread stuck in a DNS lookup).
TEARDOWN_TIMEOUT_S = 5.0


def run_until_done(new_loop: Callable[[], asyncio.AbstractEventLoop],
                   main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run main() to completion on a fresh loop from new_loop() in this thread, then tear the loop down
    and close it. Both are created once interrupts are held, so none can land between creating them
    and running them. An interrupt's exception is raised after the teardown."""
    held: list[BaseException] = []
    loop: asyncio.AbstractEventLoop | None = None
    task: asyncio.Task | None = None

    def on_signal(handler: Callable, signum: int, frame: Any) -> None:
        if held:  # a second signal while unwinding: delivered now, wherever it lands
            handler(signum, frame)
            return
        try:
            handler(signum, frame)
        except BaseException as exc:  # noqa: BLE001 - held, raised once the loop is down
            held.append(exc)
            if task is not None and not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)  # threadsafe: also wakes the loop's select()

    try:
        with _interrupts_held(on_signal):
            loop = new_loop()
            try:
                task = loop.create_task(main())
                if held:  # the signal came before there was a task to cancel
                    task.cancel()
                try:
                    result = loop.run_until_complete(task)
                finally:
                    _tear_down(loop, task)
            finally:
                loop.close()
    except BaseException:
        if held:  # cancelled (or interrupted again) because of the first interrupt: raise that one
            raise held[0] from None
        raise
    if held:  # the signal came as the probe finished
        raise held[0]
    return result


@contextmanager
def _interrupts_held(on_signal: Callable[[Callable, int, Any], None]) -> Iterator[None]:
    """While inside, SIGINT/SIGTERM handlers that are Python functions go through on_signal(handler, ...).
    Only the main thread receives signals and may install handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Callable] = {}
    try:
        for signum in INTERRUPT_SIGNALS:
            handler = signal.getsignal(signum)
            if callable(handler):  # not SIG_DFL / SIG_IGN / None (installed outside Python)
                previous[signum] = handler
                signal.signal(signum, functools.partial(on_signal, handler))
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _tear_down(loop: asyncio.AbstractEventLoop, main: asyncio.Task) -> None:
    """Cancel and await every pending task, then shut down async generators and the default executor."""
    deadline = time.monotonic() + TEARDOWN_TIMEOUT_S
    awaited: set[asyncio.Task] = {main}
    while (pending := asyncio.all_tasks(loop)) and (remaining := deadline - time.monotonic()) > 0:
        for task in pending:
            task.cancel()
        awaited |= pending
        loop.run_until_complete(asyncio.wait(pending, timeout=remaining))
    for task in awaited:  # awaiting a task takes its exception; nobody else will
        if task.done() and not task.cancelled():
            task.exception()
    loop.run_until_complete(loop.shutdown_asyncgens())
    remaining = max(deadline - time.monotonic(), 0.1)
    try:
        loop.run_until_complete(asyncio.wait_for(loop.shutdown_default_executor(), remaining))
    except TimeoutError:
        pass  # a worker thread still blocked (a DNS lookup): left to finish on its own
