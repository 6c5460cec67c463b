"""
Persistent state through C{twisted.enterprise.adbapi}: SQLite now.  L{funcplane.store.sqlite}
is the store (one transaction a method), L{funcplane.store.queries} its SQL,
L{funcplane.store.database} the connection pool and the migrations, whose numbered scripts
are in L{funcplane.store.schema}.
"""
