"""Value normalisers: one module per kind of value, each applying a vocabulary from
:mod:`discovery_svc.vocab`.

Every normaliser takes the raw cell text and returns ``(value, problem)``:

* ``(value, None)`` when the value was cleansed;
* ``(None, None)`` when the cell is empty, whitespace only or a placeholder such as ``N/A``
  (the value is *missing*, which is not a data-quality issue);
* ``(None, problem)`` when the value is present but cannot be cleansed. Nothing is guessed:
  an ambiguous value is reported rather than turned into a plausible-looking wrong one.

A flow can hold a million rows, and CMDB columns repeat the same few values over and over, so
each normaliser is memoised with ``functools.lru_cache``. The public functions are thin wrappers
around the cached private ones: a decorated function loses its parameter types under mypy, and
the row cleanser calls the cached functions directly to skip the extra call. Cached results
are immutable (frozen dataclasses, tuples) because they are shared between rows.
"""
