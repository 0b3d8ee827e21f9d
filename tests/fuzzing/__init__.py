"""Fuzzing the public gRPC surface: requests generated from the protobuf descriptors.

``surface`` lists the public methods, ``generate`` builds requests (random, mutated, raw
bytes, fuzzed metadata), ``drive`` sends them and judges every answer, ``rows`` snapshots
the database to show that refused requests change nothing.
"""
