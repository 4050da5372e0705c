"""Progress of an ensemble's members (:func:`~flowsim.train.fit_ensemble`): one bar over the
sum of the members' steps, fed in this process by :func:`~flowsim.fit`'s ``progress`` callable
and from worker processes through a queue."""

from __future__ import annotations

import queue as queue_module
import time
from collections.abc import Callable
from typing import Any

from .config import FitConfig

__all__ = ["MemberProgress", "init_worker", "worker_reporter"]

#: the queue a worker process reports its member's steps to (set by :func:`init_worker`)
_QUEUE: Any = None
#: seconds between two reports of a worker
REPORT_EVERY = 0.5


class MemberProgress:
    """A tqdm bar counting the steps of all members (``total`` = members × steps, or none under
    an open-ended time budget), with the number of finished members beside it."""

    def __init__(self, members: int, config: FitConfig, desc: str) -> None:
        from tqdm.auto import tqdm

        from .trainer import bar_total

        per_member = bar_total(config)
        self.members = members
        self.steps = [0] * members
        self.finished = 0
        self.bar = tqdm(total=None if per_member is None else members * per_member, desc=desc,
                        unit="step")
        self.bar.set_postfix_str(f"0/{members} members done")

    def step(self, k: int, done: int) -> None:
        """Member ``k`` has done ``done`` steps."""
        self.steps[k] = max(self.steps[k], int(done))
        self.bar.update(sum(self.steps) - self.bar.n)

    def finish(self, k: int, done: int | None = None) -> None:
        """Member ``k`` is done (after ``done`` steps, where known)."""
        if done is not None:
            self.step(k, done)
        self.finished += 1
        self.bar.set_postfix_str(f"{self.finished}/{self.members} members done")

    def reporter(self, k: int) -> Callable[[int], None]:
        """A ``progress`` callable for :func:`~flowsim.fit` training member ``k`` in this process."""
        return lambda done: self.step(k, done)

    def drain(self, q: Any) -> None:
        """Apply the reports waiting in the workers' queue ``q``."""
        while True:
            try:
                k, done = q.get_nowait()
            except (queue_module.Empty, OSError, ValueError, EOFError):
                return
            self.step(k, done)

    def close(self) -> None:
        self.bar.close()


def init_worker(q: Any) -> None:
    """Initializer of a worker process: report members' steps to ``q``."""
    global _QUEUE
    _QUEUE = q


class _Reporter:
    """Puts ``(k, steps done)`` on the worker's queue, at most every :data:`REPORT_EVERY` s."""

    def __init__(self, k: int, q: Any) -> None:
        self.k, self.q, self.last = k, q, 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= REPORT_EVERY:
            self.last = now
            try:
                self.q.put_nowait((self.k, int(done)))
            except Exception:  # noqa: BLE001 - progress must never stop a training
                pass


def worker_reporter(k: int) -> Callable[[int], None] | bool:
    """The ``progress`` of member ``k`` in a worker process: a reporter where the pool was
    started with :func:`init_worker`, else ``False`` (no bar)."""
    return _Reporter(k, _QUEUE) if _QUEUE is not None else False
