"""A bare grpc.aio echo in its own process: the baseline CreateFlow is compared with.

python -m tests.benchmarks.echo PORT   # prints "ready" once serving
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc

ECHO = "/bench.Echo/Echo"


async def _echo(request: bytes, _context: Any) -> bytes:
    return request


class _Handler(grpc.GenericRpcHandler):
    def service(self, _details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_unary_rpc_method_handler(_echo)


async def serve(port: int) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_Handler(),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
