"""Wakes WatchFlow streams when their flow's history grows (LISTEN/NOTIFY, any replica)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator


class FlowWatchers:
    """Per-flow events set by notifications from ``repository.append_history``."""

    def __init__(self) -> None:
        self._waiting: dict[uuid.UUID, set[asyncio.Event]] = {}

    def on_notify(self, payload: str | None) -> None:
        if payload is None:  # reconnected: anything may have changed
            for events in self._waiting.values():
                for event in events:
                    event.set()
            return
        try:
            flow_id = uuid.UUID(payload)
        except ValueError:
            return
        for event in self._waiting.get(flow_id, ()):
            event.set()

    @contextlib.contextmanager
    def watch(self, flow_id: uuid.UUID) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiting.setdefault(flow_id, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._waiting.get(flow_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._waiting[flow_id]
