"""CloudWatch Logs as AWS answers it, where moto differs (README.md, "AWS as it really
behaves"): events sent with PutLogEvents become visible to FilterLogEvents only after a
moment (`logs_visibility_lag`), FilterLogEvents answers in short pages that a reader must
follow by `nextToken` (`logs_page_events`) and always interleaves the streams by time
(AWS ignores `interleaved` since 2019; moto listed stream by stream unless asked), and
PutLogEvents refuses a batch over 1,048,576 bytes (each event's UTF-8 bytes plus 26) or
spanning more than 24 hours, as AWS does."""

from __future__ import annotations

import time
from typing import Any

from moto.logs import models as logs_models
from moto.logs.exceptions import InvalidParameterException

from .settings import SETTINGS

MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD = 26
MAX_SPAN_MS = 24 * 3600 * 1000


def apply() -> None:
    group_cls = logs_models.LogGroup

    def filter_log_events(
        self: Any,
        log_group_name: str,
        log_stream_names: list[str],
        start_time: int,
        end_time: int,
        limit: int | None,
        next_token: str | None,
        filter_pattern: str,
        interleaved: bool,
    ) -> Any:
        """moto's, with the lag, the short pages and the streams always interleaved."""
        page = int(SETTINGS.aws.get("logs_page_events", 0) or 0)
        limit = limit or 10000
        if page > 0:
            limit = min(limit, page)
        lag_ms = float(SETTINGS.aws.get("logs_visibility_lag", 0.0)) * 1000
        visible_before = time.time() * 1000 - lag_ms
        streams = [s for name, s in list(self.streams.items()) if not log_stream_names or name in log_stream_names]
        events: list[dict[str, Any]] = []
        for stream in streams:
            events += [
                e
                for e in stream.filter_log_events(start_time, end_time, filter_pattern)
                if lag_ms <= 0 or e["ingestionTime"] <= visible_before
            ]
        events.sort(key=lambda e: (e["timestamp"], int(e["eventId"])))
        first = 0
        if next_token:
            try:
                group, stream_name, event_id = next_token.split("@")
                if group != log_group_name:
                    raise ValueError()
                # Past the token's event: what sorts after it (an event seen late that
                # sorts before it is not shown again, as on AWS).
                key = next((e["timestamp"], int(e["eventId"])) for e in events if e["eventId"] == event_id)
                first = next((i for i, e in enumerate(events) if (e["timestamp"], int(e["eventId"])) > key), len(events))
            except (ValueError, StopIteration):
                return [], None, []
        chunk = events[first : first + limit]
        token = None
        if chunk and first + limit < len(events):
            last = chunk[-1]
            token = f"{log_group_name}@{last['logStreamName']}@{last['eventId']}"
        searched = [{"logStreamName": s.log_stream_name, "searchedCompletely": True} for s in streams]
        return chunk, token, searched

    group_cls.filter_log_events = filter_log_events

    backend_cls = logs_models.LogsBackend
    original_put = backend_cls.put_log_events

    def put_log_events(self: Any, log_group_name: str, log_stream_name: str, log_events: list[dict[str, Any]]) -> Any:
        size = sum(len(str(e.get("message", "")).encode()) + EVENT_OVERHEAD for e in log_events)
        if size > MAX_BATCH_BYTES:
            raise InvalidParameterException(
                f"Upload too large: {size} bytes exceeds limit of {MAX_BATCH_BYTES}"
            )
        stamps = [int(e["timestamp"]) for e in log_events]
        if stamps and max(stamps) - min(stamps) > MAX_SPAN_MS:
            raise InvalidParameterException(
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours."
            )
        return original_put(self, log_group_name, log_stream_name, log_events)

    backend_cls.put_log_events = put_log_events
