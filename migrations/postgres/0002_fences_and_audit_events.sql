-- Issue 7: fencing values that never repeat, and audit rows for more than token attempts.

-- Every claim takes a fresh value from this sequence; a worker may write a state change
-- only while (locked_by, fence) still match its claim. Unlike `attempts`, which operators
-- reset and releases decrement, a fence is never handed out twice.
CREATE SEQUENCE offboard_fence_seq;
ALTER TABLE offboarding_requests ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;

-- Rows that are not one attempt at one token: a request with no tokens, an operator's
-- retry or cancel. They name no token, so the token columns may be empty; `worker` names
-- who wrote the row (a worker id, or the operator).
ALTER TABLE revocation_audit ADD COLUMN action TEXT NOT NULL DEFAULT 'revoke'
    CHECK (action IN ('revoke', 'no_tokens', 'retry', 'cancel'));
ALTER TABLE revocation_audit ALTER COLUMN token_id DROP NOT NULL;
ALTER TABLE revocation_audit ALTER COLUMN provider DROP NOT NULL;
ALTER TABLE revocation_audit ALTER COLUMN token_type DROP NOT NULL;
ALTER TABLE revocation_audit ALTER COLUMN token_fingerprint DROP NOT NULL;
ALTER TABLE revocation_audit ALTER COLUMN attempt DROP NOT NULL;
ALTER TABLE revocation_audit ALTER COLUMN outcome DROP NOT NULL;
ALTER TABLE revocation_audit ADD CONSTRAINT revocation_audit_attempt_names_token
    CHECK (action <> 'revoke' OR (token_id IS NOT NULL AND token_fingerprint IS NOT NULL
                                  AND attempt IS NOT NULL AND outcome IS NOT NULL));
-- Settlements are looked up by token across requests (a token settled once is never sent
-- again, whichever request settled it).
CREATE INDEX revocation_audit_settled_token ON revocation_audit (token_id) WHERE settled;
