"""The orchestrator service: owns master flows, their lifecycle and history."""
