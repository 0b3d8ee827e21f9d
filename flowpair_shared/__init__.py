"""What both flowpair services share: domain enums and state machines, the transactional
outbox/inbox, tenancy, error mapping, server bootstrap and the development stack."""
