-- What each version runs with: its compatibility date (NULL: the operator's default), its
-- compatibility flags (a JSON array of strings), and its static assets (NULL: none; else a
-- JSON object {"manifest": [[path, hash], ...], "config": "<JSON text>", "binding": name}).
ALTER TABLE versions ADD COLUMN compatibility_date TEXT;
ALTER TABLE versions ADD COLUMN compatibility_flags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE versions ADD COLUMN assets TEXT;
