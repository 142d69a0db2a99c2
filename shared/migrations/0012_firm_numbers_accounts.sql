-- Firms as Twilio knows them: several numbers with history, a Messaging Service, a
-- subaccount of their own, API keys that rotate with a grace period, and sending paused
-- by an account-level Twilio error (per firm, or per Twilio account).

-- Every number a firm has had. The current owner of a number is the row without
-- removed_at (at most one per number); past rows keep inbound texts and STOPs to an old
-- number with the firm that had it. firms.sms_number stays the firm's default number.
CREATE TABLE firm_numbers (
    id          bigserial PRIMARY KEY,
    firm_id     bigint NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    number      text NOT NULL CHECK (number ~ '^\+[1-9][0-9]{6,14}$'),
    added_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    removed_at  timestamptz,
    CHECK (removed_at IS NULL OR removed_at >= added_at)
);
CREATE UNIQUE INDEX firm_numbers_current_owner ON firm_numbers (number) WHERE removed_at IS NULL;
CREATE INDEX firm_numbers_by_number ON firm_numbers (number, removed_at DESC NULLS FIRST);
CREATE INDEX firm_numbers_by_firm ON firm_numbers (firm_id);

INSERT INTO firm_numbers (firm_id, number, added_at)
SELECT id, sms_number, created_at FROM firms;

ALTER TABLE firms
    ADD COLUMN messaging_service_sid text CHECK (messaging_service_sid ~ '^MG[0-9a-fA-F]{32}$'),
    ADD COLUMN twilio_account_sid text CHECK (twilio_account_sid ~ '^AC[0-9a-fA-F]{32}$'),
    ADD COLUMN twilio_auth_token_enc text,
    ADD COLUMN previous_api_key_sha256 text UNIQUE CHECK (previous_api_key_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN previous_api_key_expires_at timestamptz,
    ADD COLUMN paused_at timestamptz,
    ADD COLUMN paused_code integer,
    ADD COLUMN paused_reason text,
    ADD CONSTRAINT firms_subaccount_complete CHECK ((twilio_account_sid IS NULL) = (twilio_auth_token_enc IS NULL));
CREATE UNIQUE INDEX firms_by_messaging_service ON firms (messaging_service_sid) WHERE messaging_service_sid IS NOT NULL;
CREATE INDEX firms_by_twilio_account ON firms (twilio_account_sid) WHERE twilio_account_sid IS NOT NULL;

-- A Twilio account whose credentials Twilio refused (20003): nothing is sent with it
-- until the sweeper's probe (a Messages list, PageSize=1) succeeds.
CREATE TABLE twilio_account_pauses (
    account_sid  text PRIMARY KEY,
    code         integer NOT NULL,
    reason       text NOT NULL,
    paused_at    timestamptz NOT NULL DEFAULT now(),
    probed_at    timestamptz
);

-- The sender of each message (chosen when it is released to a worker, or the number
-- Twilio chose for a Messaging Service send) and the conversation's sticky sender.
-- Nullable columns without a default: no table rewrite.
ALTER TABLE messages
    ADD COLUMN from_number text,
    ADD COLUMN messaging_service_sid text;
ALTER TABLE conversations ADD COLUMN from_number text;
