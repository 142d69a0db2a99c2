-- leadsms schema: the data model (docs/architecture.md). Forward-only; rules held by the database
-- itself wherever a constraint can say them.

CREATE TABLE firms (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    sms_number      text NOT NULL UNIQUE CHECK (sms_number ~ '^\+[1-9][0-9]{6,14}$'),
    default_region  text NOT NULL DEFAULT 'US' CHECK (default_region ~ '^[A-Z]{2}$'),
    api_key_sha256  text NOT NULL UNIQUE CHECK (api_key_sha256 ~ '^[0-9a-f]{64}$'),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE leads (
    id            bigserial PRIMARY KEY,
    firm_id       bigint NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    external_id   text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 200),
    name          text NOT NULL DEFAULT '',
    email         text NOT NULL DEFAULT '',
    event         text NOT NULL DEFAULT '',
    phone_raw     text,
    phone_e164    text CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    phone_status  text NOT NULL DEFAULT 'pending'
                  CHECK (phone_status IN ('pending', 'valid', 'missing', 'invalid')),
    phone_error   text,
    signed_up_at  timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (firm_id, external_id),
    CHECK (phone_status <> 'valid' OR phone_e164 IS NOT NULL),
    CHECK (phone_status <> 'invalid' OR phone_error IS NOT NULL)
);
-- newest signup per (firm, phone); picker and conversation linking
CREATE INDEX leads_firm_phone_newest ON leads (firm_id, phone_e164, signed_up_at DESC, id DESC);
-- sweeper: leads whose validate job may have been lost
CREATE INDEX leads_pending ON leads (created_at) WHERE phone_status = 'pending';

-- The Lookup cache: global, a line type is a fact about a number.
CREATE TABLE phone_lines (
    phone_e164  text PRIMARY KEY CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    valid       boolean NOT NULL,
    line_type   text,
    carrier     text,
    checked_at  timestamptz NOT NULL DEFAULT now(),
    raw         jsonb
);

CREATE TABLE phone_flags (
    firm_id                      bigint NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    phone_e164                   text NOT NULL CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    opted_out                    boolean NOT NULL DEFAULT false,
    opted_out_at                 timestamptz,
    opted_out_source             text,
    review_pending               boolean NOT NULL DEFAULT false,
    review_message_id            bigint,
    blocked                      boolean NOT NULL DEFAULT false,
    blocked_at                   timestamptz,
    blocked_reason               text,
    consecutive_filter_failures  integer NOT NULL DEFAULT 0 CHECK (consecutive_filter_failures >= 0),
    updated_at                   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firm_id, phone_e164),
    CHECK (NOT opted_out OR opted_out_source IS NOT NULL),
    CHECK (NOT blocked OR blocked_reason IS NOT NULL)
);

-- Append-only: one row per actual change of consent state.
CREATE TABLE consent_events (
    id           bigserial PRIMARY KEY,
    firm_id      bigint NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    phone_e164   text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('opt_out', 'opt_in')),
    source       text NOT NULL CHECK (source ~ '^(keyword:.+|twilio_21610|staff:.+)$'),
    message_sid  text,
    at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX consent_events_phone ON consent_events (firm_id, phone_e164, id);

-- Append-only audit of blocks, unblocks and review decisions.
CREATE TABLE phone_flag_events (
    id          bigserial PRIMARY KEY,
    firm_id     bigint NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    phone_e164  text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('blocked', 'unblocked', 'review_opened',
                                              'review_opt_out', 'review_keep', 'invalidated',
                                              'filter_failure', 'filter_reset')),
    reason      text,
    actor       text,
    message_id  bigint,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX phone_flag_events_phone ON phone_flag_events (firm_id, phone_e164, id);

CREATE FUNCTION forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER consent_events_append_only BEFORE UPDATE OR DELETE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER phone_flag_events_append_only BEFORE UPDATE OR DELETE ON phone_flag_events
    FOR EACH ROW EXECUTE FUNCTION forbid_change();

-- One conversation per (firm, phone); lead_id is the newest signup with that phone.
CREATE TABLE conversations (
    id               bigserial PRIMARY KEY,
    firm_id          bigint NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    phone_e164       text NOT NULL CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    lead_id          bigint REFERENCES leads (id) ON DELETE SET NULL,
    last_message_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (firm_id, phone_e164)
);
-- conversation list: most recent activity first, keyset on (activity, id)
CREATE INDEX conversations_recent
    ON conversations (firm_id, (COALESCE(last_message_at, created_at)) DESC, id DESC);

CREATE TABLE messages (
    id               bigserial PRIMARY KEY,
    firm_id          bigint NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    conversation_id  bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    direction        text NOT NULL CHECK (direction IN ('out', 'in')),
    body             text NOT NULL,
    sent_by          text,
    status           text NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'delivered',
                                                     'undelivered', 'failed', 'blocked', 'received')),
    twilio_status    text,
    blocked_reason   text,
    twilio_sid       text UNIQUE,
    error_code       integer,
    error_message    text,
    segments         integer CHECK (segments IS NULL OR segments >= 1),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    claimed_at       timestamptz,
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    received_at      timestamptz,
    CHECK ((direction = 'in') = (status = 'received')),
    CHECK (status <> 'blocked' OR blocked_reason IS NOT NULL),
    CHECK (status <> 'sending' OR claimed_at IS NOT NULL),
    CHECK (direction = 'out' OR received_at IS NOT NULL)
);
CREATE INDEX messages_thread ON messages (conversation_id, created_at, id);
CREATE INDEX messages_queued ON messages (COALESCE(next_attempt_at, created_at)) WHERE status = 'queued';
CREATE INDEX messages_sending ON messages (claimed_at) WHERE status = 'sending';

-- Every Twilio webhook as received. Duplicates and replays collapse on the unique key.
CREATE TABLE twilio_inbox (
    id             bigserial PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('status', 'inbound')),
    message_sid    text NOT NULL,
    twilio_status  text NOT NULL DEFAULT '',
    message_id     bigint,
    params         jsonb NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    processed_at   timestamptz,
    outcome        text,
    UNIQUE (kind, message_sid, twilio_status)
);
CREATE INDEX twilio_inbox_unprocessed ON twilio_inbox (received_at) WHERE processed_at IS NULL;

-- One row per sweeper pass (operations: when did the sweeper last run, and where).
CREATE TABLE sweeper_passes (
    id           bigserial PRIMARY KEY,
    host_pid     text NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    summary      jsonb NOT NULL DEFAULT '{}'
);
