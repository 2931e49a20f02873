"""cogent-sync benchmarks (issue 7): ``python -m bench [--quick]`` or ``make bench``.

Scenarios: catch-up of a backlog through the REST server against a direct
executemany copy, ``LOAD DATA LOCAL INFILE`` and the original Cogent-house
protocol (:mod:`bench.baseline`); bytes on the wire; the pusher's peak memory
against backlog size; the idle cycle; a fleet of base stations pushing at once.
Results go to docs/BENCHMARKS.md.
"""
