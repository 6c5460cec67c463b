"""
D1: SQL databases, each a SQLite file of its own under the data directory; the registry of
them (L{funcplane.d1.registry}), one database's file and connection
(L{funcplane.d1.database}) and what a request's SQL does there (L{funcplane.d1.sql}).
"""
