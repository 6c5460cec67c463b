-- D1 databases: each one's id (32 hex digits, which names its SQLite file under
-- <data-dir>/d1), its name (unique, as on Cloudflare), when it was created (POSIX seconds)
-- and the location hint it was created with, kept only to be shown.
CREATE TABLE d1_databases (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    location_hint TEXT
);
