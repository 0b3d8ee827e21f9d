"""`make chaos`: flows through every phase on two orchestrator and two discovery replicas
while replicas are SIGKILLed and restarted and PostgreSQL is restarted; then, once settled,
the invariants are checked in SQL and through the RPCs and a report is printed.

    python -m tests.chaos [--flows N] [--kill-interval S] [--pg-interval S] [--seed N] ...
"""
