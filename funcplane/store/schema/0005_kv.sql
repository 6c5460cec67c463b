-- Workers KV: the account's namespaces (ids funcplane makes, 32 hex digits; titles unique,
-- as on Cloudflare) and their keys.  A key's name is UTF-8 text, compared as bytes (SQLite's
-- BINARY collation), so lists come in Cloudflare's order; its metadata is JSON text; its
-- expiration POSIX seconds, NULL: never.  Deleting a namespace deletes its keys.
CREATE TABLE kv_namespaces (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE kv_keys (
    namespace_id TEXT NOT NULL REFERENCES kv_namespaces (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value BLOB NOT NULL,
    metadata TEXT,
    expiration INTEGER,
    UNIQUE (namespace_id, name)
);
CREATE INDEX kv_keys_expiration ON kv_keys (expiration) WHERE expiration IS NOT NULL;
