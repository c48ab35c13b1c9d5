"""Results of experiment runs: the SQLite store, statistics, plots and the report.

``krios.results.store.ResultsStore`` is the one place samples go; the other
modules read from it (``stats`` summarises, ``plots`` draws PNGs, ``report``
writes ``results/<run-id>/report.md``).
"""
