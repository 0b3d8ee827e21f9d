"""Authentication and authorization of flowpair callers (see ``access``)."""

from flowpair_shared.auth.access import (
    Access,
    Authenticator,
    PeerAccess,
    PublicAccess,
    TrustedHeadersAccess,
    method_roles,
)
from flowpair_shared.auth.principal import Principal, Role

__all__ = [
    "Access",
    "Authenticator",
    "PeerAccess",
    "Principal",
    "PublicAccess",
    "Role",
    "TrustedHeadersAccess",
    "method_roles",
]
