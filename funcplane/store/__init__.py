"""
Persistent state through C{twisted.enterprise.adbapi}: SQLite now (L{funcplane.store.sqlite}),
with the schema's numbered migrations in L{funcplane.store.schema}.
"""
