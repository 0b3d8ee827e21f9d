"""The transactional outbox and inbox shared by both services.

- ``UnitOfWork``: one database transaction; ``uow.outbox.add(...)`` writes a message in it.
- ``Relay``: delivers committed messages to peers over gRPC, per ordering key in commit order.
- ``first_delivery``: the inbox check that makes a redelivered message a no-op.
"""

from flowpair_shared.outbox.inbox import MESSAGE_ID_HEADER, first_delivery, message_id_from
from flowpair_shared.outbox.relay import Relay, RelaySettings
from flowpair_shared.outbox.store import OutboxWriter, OutgoingMessage
from flowpair_shared.outbox.uow import UnitOfWork

__all__ = [
    "MESSAGE_ID_HEADER",
    "OutboxWriter",
    "OutgoingMessage",
    "Relay",
    "RelaySettings",
    "UnitOfWork",
    "first_delivery",
    "message_id_from",
]
