-- Issue 9: token sources. A source with `settlement = "offboard"` leaves the application's
-- table untouched: what offboard revoked is written here instead of a `revoked_at` column.
-- `token_key` is offboard's id for the row (source number × 2^40 + the row's id); the
-- fingerprint is of the value as stored (the ciphertext, for an encrypted source), so a
-- value rotated in place is not covered by the settlement of the old one.
CREATE TABLE offboard_token_settlements (
    source            TEXT    NOT NULL,
    token_key         INTEGER NOT NULL,
    value_fingerprint TEXT    NOT NULL,
    revoked_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    PRIMARY KEY (token_key, value_fingerprint)
);
