"""The unit of work, one discipline: its chain of stages (chain.py, which runs requests) and its files in the
work dir (store.py, which needs no engine: the folder is assembled from it)."""
