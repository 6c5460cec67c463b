-- Cron triggers: each function's schedules (its cron expressions, as given, in the order
-- given), when each was added and last changed, and the last scheduled time each fired
-- for (POSIX seconds, NULL: never), so that no time fires twice, even across a restart.
CREATE TABLE schedules (
    function_id INTEGER NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    cron TEXT NOT NULL,
    created_at REAL NOT NULL,
    modified_at REAL NOT NULL,
    last_fired REAL,
    PRIMARY KEY (function_id, cron)
);
