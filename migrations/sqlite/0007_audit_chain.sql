-- Issue 11: tamper-evident audit. Every row appended from now on is sealed into a hash
-- chain (src/storage/audit/seal.rs): `chain_seq` numbers the rows in the order their
-- transactions committed, `prev_hash` is the hash of the row before, `row_hash` is
-- SHA-256 over the row's canonical encoding and `prev_hash` (src/storage/audit/encode.rs).
-- The chain covers `user_ref`, a keyed hash (HMAC-SHA256 under `user_key`) of the user
-- id, rather than the id, so that a row whose id is later pseudonymized still verifies.
ALTER TABLE revocation_audit ADD COLUMN chain_seq INTEGER;
ALTER TABLE revocation_audit ADD COLUMN user_ref TEXT;
ALTER TABLE revocation_audit ADD COLUMN prev_hash TEXT;
ALTER TABLE revocation_audit ADD COLUMN row_hash TEXT;
CREATE UNIQUE INDEX revocation_audit_chain ON revocation_audit (chain_seq);
-- Rows written before this migration carry no chain: `offboard audit verify` counts them
-- against `prechain_rows` and refuses any such row with an id above `prechain_max_id`.
CREATE INDEX revocation_audit_prechain ON revocation_audit (id) WHERE chain_seq IS NULL;

-- The head: the last row's sequence number and hash. Writers are serialized by
-- BEGIN IMMEDIATE, so chain positions are handed out in commit order.
CREATE TABLE offboard_audit_chain (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    head_seq        INTEGER NOT NULL,
    head_hash       TEXT    NOT NULL,
    user_key        TEXT    NOT NULL,
    prechain_rows   INTEGER NOT NULL,
    prechain_max_id INTEGER NOT NULL,
    started_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO offboard_audit_chain (id, head_seq, head_hash, user_key, prechain_rows, prechain_max_id)
SELECT 1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
       lower(hex(randomblob(32))), count(*), COALESCE(max(id), 0)
  FROM revocation_audit;
