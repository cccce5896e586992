"""Comparison studies: a declared grid of cells run on Dask, stored as results.jsonl, reported and compared.

``spec`` reads and checks the TOML study, ``run`` executes its cells on a
cluster (a ``LocalCluster`` by default), ``results`` owns the results file and
the cells' keys, ``report`` and ``compare`` read it back, ``cli`` is
``fastscratch study``. Needs Dask (in a clone: ``pip install -e ".[study]"``).
"""
