"""A work queue of object keys with per-key backoff (client-go's workqueue, small).

- A key is in the queue at most once; a key added while a worker holds it is
  queued again when the worker calls :meth:`WorkQueue.done` (so a change seen
  mid-attempt is never lost, and two workers never hold the same key).
- :meth:`WorkQueue.retry` parks a key for an exponentially growing delay
  (per-key failure count); :meth:`WorkQueue.forget` resets the count.
- :meth:`WorkQueue.wake_all` moves every parked key back at once (a node or
  label changed: what failed may fit now).
- Keys are never dropped except by :meth:`WorkQueue.forget` + no re-add.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque


class WorkQueue:
    """Thread-safe queue of string keys with delayed re-adds.

    Parameters
    ----------
    backoff_base_s, backoff_max_s:
        Delay of a key's ``n``-th consecutive :meth:`retry`: ``base * 2**(n-1)``, capped.
    """

    def __init__(self, backoff_base_s: float = 0.5, backoff_max_s: float = 10.0) -> None:
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._waiting: dict[str, float] = {}  # key -> monotonic due time
        self._heap: list[tuple[float, str]] = []
        self._failures: dict[str, int] = {}
        self._shutdown = False

    # -- producers --------------------------------------------------------------
    def add(self, key: str) -> None:
        """Queue ``key`` now (cancels a pending delayed retry)."""
        with self._cond:
            self._waiting.pop(key, None)
            self._add_locked(key)

    def add_after(self, key: str, delay_s: float) -> None:
        """Queue ``key`` after ``delay_s`` seconds (an earlier pending time wins)."""
        if delay_s <= 0:
            self.add(key)
            return
        with self._cond:
            due = time.monotonic() + delay_s
            if key in self._queued:
                return
            current = self._waiting.get(key)
            if current is not None and current <= due:
                return
            self._waiting[key] = due
            heapq.heappush(self._heap, (due, key))
            self._cond.notify()

    def retry(self, key: str, max_delay_s: float | None = None) -> float:
        """Re-add ``key`` after its backoff (capped by ``max_delay_s``); returns the delay."""
        with self._cond:
            n = self._failures.get(key, 0) + 1
            self._failures[key] = n
        delay = min(self.backoff_base_s * 2 ** (n - 1), self.backoff_max_s)
        if max_delay_s is not None:
            delay = max(0.0, min(delay, max_delay_s))
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """Reset ``key``'s backoff and cancel its delayed retry."""
        with self._cond:
            self._failures.pop(key, None)
            self._waiting.pop(key, None)

    def failures(self, key: str) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def wake_all(self) -> int:
        """Queue every key waiting for a delayed retry now; returns how many."""
        with self._cond:
            keys = list(self._waiting)
            self._waiting.clear()
            for key in keys:
                self._add_locked(key)
            return len(keys)

    # -- consumers --------------------------------------------------------------
    def get(self, timeout: float | None = None) -> str | None:
        """Take the next key (the caller must call :meth:`done`); ``None`` on timeout/shutdown."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                self._promote_due_locked()
                if self._queue:
                    key = self._queue.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                now = time.monotonic()
                wait = None if deadline is None else deadline - now
                if wait is not None and wait <= 0:
                    return None
                if self._heap:
                    until_due = max(0.0, self._heap[0][0] - now)
                    wait = until_due if wait is None else min(wait, until_due)
                self._cond.wait(wait)

    def done(self, key: str) -> None:
        """The worker finished with ``key``; re-queue it if it was added meanwhile."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add_locked(key)

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def pending(self) -> int:
        """Keys queued, being processed, or waiting for a retry."""
        with self._cond:
            return len(self._queued | self._processing | set(self._waiting))

    # -- internals ----------------------------------------------------------------
    def _add_locked(self, key: str) -> None:
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append(key)
        self._cond.notify()

    def _promote_due_locked(self) -> None:
        now = time.monotonic()
        while self._heap and self._heap[0][0] <= now:
            due, key = heapq.heappop(self._heap)
            if self._waiting.get(key) == due:
                del self._waiting[key]
                self._add_locked(key)
