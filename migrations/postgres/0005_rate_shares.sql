-- Issue 10: rate limits shared by the workers of one database. Each draining worker holds a
-- row per provider, renewed every half second or so with a short lease; a provider's rate is
-- split among its live rows. A worker that stops deletes its rows; a dead one's expire.
CREATE TABLE offboard_rate_shares (
    provider    TEXT        NOT NULL,
    worker      TEXT        NOT NULL,
    joined_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, worker)
);

-- The adaptive rate of each provider, in calls a second for all workers: lowered when a
-- provider throttles, recovering slowly (src/provider/gate/pace.rs).
CREATE TABLE offboard_provider_pacing (
    provider     TEXT             PRIMARY KEY,
    rate_per_sec DOUBLE PRECISION NOT NULL,
    ceiling      DOUBLE PRECISION NOT NULL,
    updated_at   TIMESTAMPTZ      NOT NULL DEFAULT now(),
    decreased_at TIMESTAMPTZ
);
