"""Add a token to a tokens file and print it (the file keeps only its hash):

    python -m flowpair_shared.auth FILE --role operator --client-account UUID [--engagement UUID]

The token is printed once; store it where the caller keeps secrets.
"""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path
from typing import Any

from flowpair_shared.auth.principal import Role
from flowpair_shared.auth.token_file import new_token, parse, token_entry
from flowpair_shared.names import uuid_or_problem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowpair_shared.auth", description=__doc__)
    parser.add_argument("file", type=Path, help="the tokens file (FLOWPAIR_AUTH_TOKENS_FILE)")
    parser.add_argument("--role", required=True, choices=[r.name.lower() for r in Role])
    parser.add_argument(
        "--client-account", action="append", required=True, help='a UUID, or "*" for every one'
    )
    parser.add_argument("--engagement", action="append", help="restrict to these engagements")
    parser.add_argument("--user", help="the principal, a UUID (default: a new one)")
    parser.add_argument("--name", default="", help="a label for people reading the file")
    args = parser.parse_args(argv)
    body: dict[str, Any] = {"tokens": []}
    if args.user and isinstance(problem := uuid_or_problem(args.user.lower()), str):
        parser.error(f"--user {problem}")
    token = new_token()
    entry = token_entry(
        token,
        user_id=uuid.UUID(args.user) if args.user else uuid.uuid4(),
        role=Role.parse(args.role),
        client_accounts=args.client_account,
        engagements=args.engagement,
        name=args.name,
    )
    try:
        if args.file.exists():
            parse(args.file.read_text(), str(args.file))  # refuse to extend a broken file
            body = json.loads(args.file.read_text())
        parse(json.dumps({"tokens": [entry]}), "the new token")
    except ValueError as error:
        parser.error(str(error))
    body["tokens"].append(entry)
    args.file.write_text(json.dumps(body, indent=2) + "\n")
    print(token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
