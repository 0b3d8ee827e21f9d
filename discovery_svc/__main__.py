"""``python -m discovery_svc``: serve until SIGTERM/SIGINT."""

from discovery_svc.app import build
from flowpair_shared.server import main

if __name__ == "__main__":
    main("discovery", build)
