"""gRPC keepalive options of both ends of the internal channels, kept consistent here.

The relay's channel pings its peer every ``CLIENT_PING_MS`` even with no call in flight, so a
connection through a dead host or a dropped NAT entry is noticed within about 40 s (ping +
timeout) and re-dialled before the next delivery, instead of the next delivery hanging on it.
A gRPC server answers pings more frequent than it allows with GOAWAY ``too_many_pings``, and by
default allows one every 5 minutes and none without a call: the servers here permit pings
without calls every ``SERVER_MIN_PING_INTERVAL_MS``, a third of the client's interval. The
servers ping their clients too (``SERVER_PING_MS``), to free the calls and streams (an upload)
of clients that vanished.
"""

from __future__ import annotations

CLIENT_PING_MS = 30_000
PING_TIMEOUT_MS = 10_000
SERVER_PING_MS = 60_000
SERVER_MIN_PING_INTERVAL_MS = 10_000

assert SERVER_MIN_PING_INTERVAL_MS <= CLIENT_PING_MS  # else servers GOAWAY the relay

CLIENT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", CLIENT_PING_MS),
    ("grpc.keepalive_timeout_ms", PING_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    # Keep pinging an idle connection (the default stops after 2 pings without data).
    ("grpc.http2.max_pings_without_data", 0),
)

SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", SERVER_PING_MS),
    ("grpc.keepalive_timeout_ms", PING_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # What the server accepts from clients: pings with no call in flight, this often.
    ("grpc.http2.min_ping_interval_without_data_ms", SERVER_MIN_PING_INTERVAL_MS),
    ("grpc.http2.max_ping_strikes", 2),
)
