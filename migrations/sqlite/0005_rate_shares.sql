-- Issue 10: rate limits shared by the workers of one database. On SQLite one process is the
-- normal case and offboard does not coordinate through these tables (each worker paces at
-- the whole rate, adapting on its own); they exist so both backends have the same schema.
CREATE TABLE offboard_rate_shares (
    provider    TEXT NOT NULL,
    worker      TEXT NOT NULL,
    joined_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    lease_until TEXT NOT NULL,
    PRIMARY KEY (provider, worker)
);

CREATE TABLE offboard_provider_pacing (
    provider     TEXT PRIMARY KEY,
    rate_per_sec REAL NOT NULL,
    ceiling      REAL NOT NULL,
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    decreased_at TEXT
);
