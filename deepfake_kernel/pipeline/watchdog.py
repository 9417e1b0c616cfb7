"""Run a call with a deadline in a worker thread that the caller can abandon.

Python cannot kill a thread. A call that overruns its deadline is *abandoned*: the caller gets
:class:`StageTimeout` at once and goes on, while the worker keeps running (and keeps whatever CPU, memory or
GPU memory it holds) until its call returns by itself. Workers are daemon threads, so a worker that never
returns does not keep the process alive; :func:`abandoned_alive` counts them so that the command line can
leave with ``os._exit`` instead of waiting for them. The alternative, a worker process per video, could be
killed, but it would need its own copy of the models (seconds to load, GPU memory twice) and would have to
ship frames or results between processes; a hang is rare enough that the thread's cost is the better trade.
"""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")

_abandoned: list[threading.Thread] = []
_lock = threading.Lock()


class StageTimeout(TimeoutError):
    """A call ran past its deadline and was abandoned."""


def run_with_timeout(fn: Callable[[], T], timeout: float | None, name: str = "worker") -> T:
    """``fn()`` in a daemon thread: its result, its exception re-raised, or :class:`StageTimeout` after
    ``timeout`` seconds. ``timeout=None`` calls ``fn`` directly in the calling thread."""
    if timeout is None:
        return fn()
    outcome: dict = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=target, name=name, daemon=True)
    worker.start()
    try:
        finished = done.wait(max(0.0, timeout))
    except BaseException:  # Ctrl-C or a SIGTERM handler while waiting: the worker is left behind
        _remember(worker)
        raise
    if not finished:
        _remember(worker)
        raise StageTimeout(f"{name} took over {timeout:.1f}s and was abandoned")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _remember(worker: threading.Thread) -> None:
    with _lock:
        _abandoned[:] = [t for t in _abandoned if t.is_alive()] + [worker]


def abandoned_alive() -> int:
    """Abandoned workers that are still running."""
    with _lock:
        _abandoned[:] = [t for t in _abandoned if t.is_alive()]
        return len(_abandoned)
