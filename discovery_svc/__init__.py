"""The discovery service: owns child flows, runs each phase and reports its status."""
