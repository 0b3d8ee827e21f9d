"""Operator commands for the outbox (DATABASE_URL, or the embedded dev database):

python -m flowpair_shared.outbox parked              # list parked messages
python -m flowpair_shared.outbox requeue MESSAGE_ID  # give one a fresh set of attempts
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from flowpair_shared import db_scope, devstack
from flowpair_shared.db import create_engine
from flowpair_shared.outbox.store import list_parked, requeue


async def _main(argv: list[str], url: str) -> int:
    engine = create_engine(url, pool_size=1)
    try:
        with db_scope.system():  # the outbox of every tenant
            return await _command(argv, engine)
    finally:
        await engine.dispose()


async def _command(argv: list[str], engine: AsyncEngine) -> int:
    if argv[:1] == ["parked"]:
        async with engine.connect() as conn:
            for m in await list_parked(conn):
                print(
                    f"{m.message_id}  {m.source}->{m.method}  flow={m.ordering_key}"
                    f"  seq={m.seq}  attempts={m.attempts}  parked={m.parked_at}"
                    f"  error={m.last_error}"
                )
        return 0
    if len(argv) == 2 and argv[0] == "requeue":
        try:
            message_id = uuid.UUID(argv[1])
        except ValueError:
            print(f"not a message id: {argv[1]!r}", file=sys.stderr)
            return 2
        async with engine.begin() as conn:
            done = await requeue(conn, message_id)
        print("re-queued" if done else "no parked message with that id", file=sys.stderr)
        return 0 if done else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1:], devstack.database_url())))
