"""``python -m orchestrator_svc``: serve until SIGTERM/SIGINT."""

from flowpair_shared.server import main
from orchestrator_svc.app import build

if __name__ == "__main__":
    main("orchestrator", build)
