-- Issue 8: proof of death and refresh-then-revoke.
--
-- `still_active`: the provider answered success, but asking it afterwards showed the token
-- still works; `refreshed`: the first of refresh-then-revoke's two attempts (the refresh
-- token exchanged for a fresh access token, which is revoked next). SQLite cannot change a
-- CHECK in place, so the table is rebuilt, as in 0002.
--
-- `verified`: whether death was checked after a success answer (1: proven dead; 0: still
-- active; NULL: the provider allows no check, or none is configured); `verified_by`: how.
DROP TRIGGER revocation_audit_no_update;
DROP TRIGGER revocation_audit_no_delete;
CREATE TABLE revocation_audit_new (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id          INTEGER NOT NULL REFERENCES offboarding_requests (id),
    user_id             TEXT    NOT NULL,
    action              TEXT    NOT NULL DEFAULT 'revoke'
                        CHECK (action IN ('revoke', 'no_tokens', 'retry', 'cancel')),
    token_id            INTEGER,
    provider            TEXT,
    token_type          TEXT,
    token_fingerprint   TEXT,
    attempt             INTEGER,
    outcome             TEXT
                        CHECK (outcome IN ('revoked', 'already_invalid', 'not_revocable', 'transient', 'failed',
                                           'still_active', 'refreshed')),
    settled             BOOLEAN NOT NULL,
    http_status         INTEGER,
    provider_request_id TEXT,
    error               TEXT,
    duration_ms         INTEGER NOT NULL,
    worker              TEXT    NOT NULL,
    attempted_at        TEXT    NOT NULL,
    verified            BOOLEAN,
    verified_by         TEXT,
    CHECK (action <> 'revoke' OR (token_id IS NOT NULL AND token_fingerprint IS NOT NULL
                                  AND attempt IS NOT NULL AND outcome IS NOT NULL))
);
INSERT INTO revocation_audit_new (id, request_id, user_id, action, token_id, provider, token_type,
                                  token_fingerprint, attempt, outcome, settled, http_status,
                                  provider_request_id, error, duration_ms, worker, attempted_at)
SELECT id, request_id, user_id, action, token_id, provider, token_type, token_fingerprint, attempt, outcome,
       settled, http_status, provider_request_id, error, duration_ms, worker, attempted_at
  FROM revocation_audit;
DROP TABLE revocation_audit;
ALTER TABLE revocation_audit_new RENAME TO revocation_audit;
CREATE INDEX revocation_audit_request ON revocation_audit (request_id, token_id);
CREATE INDEX revocation_audit_user ON revocation_audit (user_id);
CREATE INDEX revocation_audit_settled_token ON revocation_audit (token_id) WHERE settled;
CREATE TRIGGER revocation_audit_no_update BEFORE UPDATE ON revocation_audit
BEGIN SELECT RAISE(ABORT, 'revocation_audit is append-only'); END;
CREATE TRIGGER revocation_audit_no_delete BEFORE DELETE ON revocation_audit
BEGIN SELECT RAISE(ABORT, 'revocation_audit is append-only'); END;
