-- Versions made of several modules (bytes kept exactly, with their kinds), typed bindings
-- (plain text, JSON, secrets), what each version records about itself, and deployments:
-- which versions serve a function's own host, in what shares, newest last.
CREATE TABLE modules (
    version_id TEXT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (version_id, position)
);

INSERT INTO modules (version_id, position, name, kind, content)
    SELECT id, 0, 'worker.js', CASE format WHEN 'module' THEN 'esModule' ELSE 'script' END,
           CAST(code AS BLOB)
    FROM versions;

-- A JSON array of [name, type, value] triples, by name.
ALTER TABLE versions ADD COLUMN bindings TEXT NOT NULL DEFAULT '[]';
UPDATE versions SET bindings = (
    SELECT coalesce(json_group_array(json_array(key, 'plain_text', value)), '[]')
    FROM (SELECT key, value FROM json_each(versions.env) ORDER BY key)
);
ALTER TABLE versions DROP COLUMN code;
ALTER TABLE versions DROP COLUMN env;
ALTER TABLE versions ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';

CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    function_id INTEGER NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX deployments_function ON deployments (function_id, created_at);

CREATE TABLE deployment_versions (
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    version_id TEXT NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    percentage REAL NOT NULL,
    PRIMARY KEY (deployment_id, version_id)
);

CREATE INDEX deployment_versions_version ON deployment_versions (version_id);

INSERT INTO deployments (id, function_id, created_at, metadata)
    SELECT lower(hex(randomblob(16))), f.id, v.created_at, '{"source":"api"}'
    FROM functions f JOIN versions v ON v.id = f.latest_version_id;

INSERT INTO deployment_versions (deployment_id, version_id, percentage)
    SELECT d.id, f.latest_version_id, 100
    FROM deployments d JOIN functions f ON f.id = d.function_id;
