-- offboard schema, PostgreSQL. See DESIGN.md §1 for the contract these tables carry.

-- The token store. The application owns it; offboard only reads tokens and sets revoked_at.
CREATE TABLE IF NOT EXISTS oauth_tokens (
    id          BIGSERIAL PRIMARY KEY,
    user_id     TEXT        NOT NULL,
    provider    TEXT        NOT NULL,
    token_type  TEXT        NOT NULL CHECK (token_type IN ('access_token', 'refresh_token')),
    token       TEXT        NOT NULL,
    grant_ref   TEXT,
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS oauth_tokens_user_id ON oauth_tokens (user_id);

CREATE TABLE offboarding_requests (
    id              BIGSERIAL PRIMARY KEY,
    user_id         TEXT        NOT NULL CHECK (user_id <> ''),
    requested_by    TEXT,
    external_ref    TEXT,
    state           TEXT        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'running', 'cleared', 'failed', 'cancelled')),
    -- Number of times the request was claimed. Also the fencing value: a worker may write
    -- results only while (locked_by, attempts) still match what it claimed.
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    locked_by       TEXT,
    locked_until    TIMESTAMPTZ,
    last_error      TEXT,
    requested_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    cleared_at      TIMESTAMPTZ,
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
    id                  BIGSERIAL PRIMARY KEY,
    request_id          BIGINT      NOT NULL REFERENCES offboarding_requests (id),
    user_id             TEXT        NOT NULL,
    token_id            BIGINT      NOT NULL,
    provider            TEXT        NOT NULL,
    token_type          TEXT        NOT NULL,
    token_fingerprint   TEXT        NOT NULL,
    attempt             INTEGER     NOT NULL,
    outcome             TEXT        NOT NULL
                        CHECK (outcome IN ('revoked', 'already_invalid', 'not_revocable', 'transient', 'failed')),
    settled             BOOLEAN     NOT NULL,
    http_status         INTEGER,
    provider_request_id TEXT,
    error               TEXT,
    duration_ms         BIGINT      NOT NULL,
    worker              TEXT        NOT NULL,
    attempted_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX revocation_audit_request ON revocation_audit (request_id, token_id);
CREATE INDEX revocation_audit_user ON revocation_audit (user_id);

CREATE FUNCTION offboard_audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'revocation_audit is append-only';
END $$;
CREATE TRIGGER revocation_audit_append_only
    BEFORE UPDATE OR DELETE ON revocation_audit
    FOR EACH ROW EXECUTE FUNCTION offboard_audit_is_append_only();

-- Wake idle workers when a request is inserted (or put back to pending), and tell
-- listeners when a request is cleared. Both are sent at commit.
CREATE FUNCTION offboard_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'pending' AND (TG_OP = 'INSERT' OR OLD.state <> 'pending') THEN
        PERFORM pg_notify('offboard_requests', NEW.id::text);
    ELSIF NEW.state = 'cleared' AND OLD.state <> 'cleared' THEN
        PERFORM pg_notify('offboard_cleared', NEW.id::text);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER offboarding_requests_notify
    AFTER INSERT OR UPDATE OF state ON offboarding_requests
    FOR EACH ROW EXECUTE FUNCTION offboard_notify();

-- What the GDPR deletion job reads: one row per user's latest request.
CREATE VIEW deletion_clearance AS
SELECT DISTINCT ON (user_id)
       user_id, id AS request_id, state, state = 'cleared' AS cleared, cleared_at,
       last_error, requested_at, external_ref
  FROM offboarding_requests
 ORDER BY user_id, id DESC;
