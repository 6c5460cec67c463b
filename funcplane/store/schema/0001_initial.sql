-- Functions, their versions and aliases.  Names keep the form a user gave them; "key" is
-- the lower-case form they are unique by and routed on.  Version ids are made by funcplane.
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE functions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    latest_version_id TEXT REFERENCES versions (id) ON DELETE SET NULL
);

CREATE TABLE versions (
    id TEXT PRIMARY KEY,
    function_id INTEGER NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    format TEXT NOT NULL,
    code TEXT NOT NULL,
    env TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (function_id, key)
);

CREATE TABLE aliases (
    function_id INTEGER NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    version_id TEXT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    PRIMARY KEY (function_id, key)
);

CREATE INDEX aliases_version ON aliases (version_id);
