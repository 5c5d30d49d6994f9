"""harness: throwaway PostgreSQL clusters and poolers for pytest (test/conftest.py) and make run.
"""

from .postgres import PASSWORDS, PgCluster
from .pooler import KINDS, Pooler, PoolerError, render_ini, render_userlist, start_pooler
from .util import REPO_ROOT, free_port, raise_nofile_limit

__all__ = ['PASSWORDS', 'PgCluster', 'KINDS', 'Pooler', 'PoolerError', 'render_ini',
           'render_userlist', 'start_pooler', 'REPO_ROOT', 'free_port', 'raise_nofile_limit']
