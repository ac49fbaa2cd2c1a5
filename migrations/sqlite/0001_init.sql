-- offboard schema, SQLite. See DESIGN.md §1 for the contract these tables carry.
-- Timestamps are RFC 3339 text in UTC ('2026-01-31T12:00:00.123+00:00'), the shape sqlx
-- writes, so that they compare correctly as text. Defaults use the same shape.

CREATE TABLE IF NOT EXISTS oauth_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT    NOT NULL,
    provider    TEXT    NOT NULL,
    token_type  TEXT    NOT NULL CHECK (token_type IN ('access_token', 'refresh_token')),
    token       TEXT    NOT NULL,
    grant_ref   TEXT,
    expires_at  TEXT,
    revoked_at  TEXT
);
CREATE INDEX IF NOT EXISTS oauth_tokens_user_id ON oauth_tokens (user_id);

CREATE TABLE offboarding_requests (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         TEXT    NOT NULL CHECK (user_id <> ''),
    requested_by    TEXT,
    external_ref    TEXT,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'running', 'cleared', 'failed', 'cancelled')),
    -- Number of times the request was claimed. Also the fencing value: a worker may write
    -- results only while (locked_by, attempts) still match what it claimed.
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    locked_by       TEXT,
    locked_until    TEXT,
    last_error      TEXT,
    requested_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    cleared_at      TEXT,
    CHECK ((state = 'cleared') = (cleared_at IS NOT NULL)),
    CHECK (state <> 'running' OR (locked_by IS NOT NULL AND locked_until IS NOT NULL))
);
-- At most one open request per user: this is what makes enqueueing idempotent.
CREATE UNIQUE INDEX offboarding_requests_one_open_per_user
    ON offboarding_requests (user_id) WHERE state IN ('pending', 'running', 'failed');
CREATE INDEX offboarding_requests_due
    ON offboarding_requests (next_attempt_at) WHERE state = 'pending';
CREATE INDEX offboarding_requests_leased
    ON offboarding_requests (locked_until) WHERE state = 'running';

-- Append-only: one row per revocation attempt. Never holds a token, only its fingerprint.
CREATE TABLE revocation_audit (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id          INTEGER NOT NULL REFERENCES offboarding_requests (id),
    user_id             TEXT    NOT NULL,
    token_id            INTEGER NOT NULL,
    provider            TEXT    NOT NULL,
    token_type          TEXT    NOT NULL,
    token_fingerprint   TEXT    NOT NULL,
    attempt             INTEGER NOT NULL,
    outcome             TEXT    NOT NULL
                        CHECK (outcome IN ('revoked', 'already_invalid', 'not_revocable', 'transient', 'failed')),
    settled             BOOLEAN NOT NULL,
    http_status         INTEGER,
    provider_request_id TEXT,
    error               TEXT,
    duration_ms         INTEGER NOT NULL,
    worker              TEXT    NOT NULL,
    attempted_at        TEXT    NOT NULL
);
CREATE INDEX revocation_audit_request ON revocation_audit (request_id, token_id);
CREATE INDEX revocation_audit_user ON revocation_audit (user_id);

CREATE TRIGGER revocation_audit_no_update BEFORE UPDATE ON revocation_audit
BEGIN SELECT RAISE(ABORT, 'revocation_audit is append-only'); END;
CREATE TRIGGER revocation_audit_no_delete BEFORE DELETE ON revocation_audit
BEGIN SELECT RAISE(ABORT, 'revocation_audit is append-only'); END;

-- What the GDPR deletion job reads: one row per user's latest request.
CREATE VIEW deletion_clearance AS
SELECT r.user_id, r.id AS request_id, r.state, r.state = 'cleared' AS cleared, r.cleared_at,
       r.last_error, r.requested_at, r.external_ref
  FROM offboarding_requests r
 WHERE r.id = (SELECT max(id) FROM offboarding_requests o WHERE o.user_id = r.user_id);
