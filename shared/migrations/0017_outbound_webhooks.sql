-- Outbound webhooks (outbound/): a firm's endpoints, one delivery row per (endpoint,
-- event) fanned out from the event log, and the log of every attempt.
--
-- Fan-out cannot lose an event: each endpoint keeps the cursor (`fanned_to`) up to which
-- the firm's events have been turned into delivery rows, advanced in the same transaction
-- that inserts them. Event cursors never skip (migration 0011), so `seq > fanned_to`
-- finds every event not yet fanned out, whoever crashed where.

CREATE TABLE webhook_endpoints (
    id                          bigserial PRIMARY KEY,
    firm_id                     bigint NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    url                         text NOT NULL,
    event_types                 text[] NOT NULL,
    -- the whsec_ secret, Fernet-encrypted with CREDENTIALS_KEY when it is set
    secret_enc                  text NOT NULL,
    -- after a rotation, the previous secret signs too until it expires
    previous_secret_enc         text,
    previous_secret_expires_at  timestamptz,
    enabled                     boolean NOT NULL DEFAULT true,
    disabled_at                 timestamptz,
    disabled_reason             text,
    -- the last event cursor of the firm turned into delivery rows for this endpoint
    fanned_to                   bigint NOT NULL DEFAULT 0,
    -- 429/502/504, timeouts, Retry-After: no attempt to this endpoint before this time
    slow_until                  timestamptz,
    slow_streak                 integer NOT NULL DEFAULT 0,
    -- the start of an unbroken run of failed attempts (NULL after a success)
    failing_since               timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at                  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX webhook_endpoints_firm ON webhook_endpoints (firm_id);

CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    endpoint_id      bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    firm_id          bigint NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    -- the event (events.id gives the webhook-id; its row may be pruned before the log is)
    event_id         bigint NOT NULL,
    event_seq        bigint NOT NULL,
    event_type       text NOT NULL,
    event_at         timestamptz NOT NULL,
    data             jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivering', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_until      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at     timestamptz,
    UNIQUE (endpoint_id, event_seq)
);
-- what is due, per endpoint (the drain) and across endpoints (the sweeper)
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_due_all ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- claims whose worker died
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (lease_until) WHERE status = 'delivering';
-- erasure and the CLI, by firm; retention, by age
CREATE INDEX webhook_deliveries_firm ON webhook_deliveries (firm_id, id);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);

CREATE TABLE webhook_attempts (
    id                bigserial PRIMARY KEY,
    delivery_id       bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    endpoint_id       bigint NOT NULL,
    attempt           integer NOT NULL,
    at                timestamptz NOT NULL DEFAULT clock_timestamp(),
    outcome           text NOT NULL,
    status_code       integer,
    duration_ms       integer NOT NULL,
    response_excerpt  text
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt);
