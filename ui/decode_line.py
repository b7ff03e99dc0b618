"""A fair line for the decoder: first come, first served, and a decode
keeps its place between its instalments.

The models are shared, and two decodes at once only slow each other on a
CPU, so decodes take turns. A streamed decode holds the models only while
an instalment is made (a visitor who leaves mid-decode never keeps them),
but it keeps its place at the head of the line until its last instalment,
so it is not sent to the back three times. A place whose holder does not
come back within ``grace_s`` (the visitor left) is given up.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from contextlib import contextmanager


class DecodeLine:
    def __init__(self, grace_s: float = 2.0):
        self.grace_s = grace_s
        self._cond = threading.Condition()
        self._line: deque[int] = deque()  # tickets, in order of arrival
        self._numbers = itertools.count()
        self._busy = False  # an instalment is being made
        self._idle_since = time.monotonic()  # when the head last finished an instalment

    def join(self) -> int:
        """A ticket: a place at the back of the line."""
        with self._cond:
            ticket = next(self._numbers)
            self._line.append(ticket)
            return ticket

    def leave(self, ticket: int) -> None:
        """Give the place up (after the last instalment, or on an error)."""
        with self._cond:
            if ticket in self._line:
                self._line.remove(ticket)
                self._idle_since = time.monotonic()
                self._cond.notify_all()

    def ahead_of(self, ticket: int) -> int:
        with self._cond:
            return self._line.index(ticket) if ticket in self._line else 0

    def __len__(self) -> int:
        with self._cond:
            return len(self._line)

    @contextmanager
    def turn(self, ticket: int, on_wait=None, poll_s: float = 0.25):
        """Hold the models for one instalment, when ``ticket`` is at the head
        of the line; ``on_wait(ahead)`` about four times a second meanwhile."""
        with self._cond:
            if ticket not in self._line:  # given up while away: back of the line
                self._line.append(ticket)
            while self._busy or self._line[0] != ticket:
                self._drop_abandoned_head(ticket)
                if self._busy or self._line[0] != ticket:
                    if on_wait is not None:
                        on_wait(self._line.index(ticket))
                    self._cond.wait(poll_s)
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._idle_since = time.monotonic()
                self._cond.notify_all()

    def _drop_abandoned_head(self, waiting: int) -> None:
        head = self._line[0]
        if head != waiting and not self._busy and time.monotonic() - self._idle_since > self.grace_s:
            self._line.popleft()
            self._idle_since = time.monotonic()
