-- Issue 8: proof of death and refresh-then-revoke.
--
-- `still_active`: the provider answered success, but asking it afterwards showed the token
-- still works; `refreshed`: the first of refresh-then-revoke's two attempts (the refresh
-- token exchanged for a fresh access token, which is revoked next).
ALTER TABLE revocation_audit DROP CONSTRAINT revocation_audit_outcome_check;
ALTER TABLE revocation_audit ADD CONSTRAINT revocation_audit_outcome_check
    CHECK (outcome IN ('revoked', 'already_invalid', 'not_revocable', 'transient', 'failed',
                       'still_active', 'refreshed'));

-- Whether death was checked after a success answer (true: proven dead; false: still
-- active; NULL: the provider allows no check, or none is configured), and how.
ALTER TABLE revocation_audit ADD COLUMN verified BOOLEAN;
ALTER TABLE revocation_audit ADD COLUMN verified_by TEXT;
