"""Segments age: drift between snapshots (who moved where), feature drift against reference
statistics, and (in a later step) refreshes that keep segment names.

Building blocks so far: :mod:`.migration` (the migration matrix of two (id, segment) snapshots),
:mod:`.reference` (reference statistics of a customer table, plain data) and :mod:`.psi` (the
population stability index with a sample-size-aware verdict).
"""
