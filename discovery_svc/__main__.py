"""``python -m discovery_svc``: serve until SIGTERM/SIGINT."""

from flowpair_shared.server import main
from discovery_svc.app import build

if __name__ == "__main__":
    main("discovery", build)
