-- The opt-out list, staff opt-outs, Advanced Opt-Out and the consent export (issue 15).

-- The ledger accepts the fourth source, an imported list: `list:<name>`. And each event
-- keeps what an audit asks for beyond kind and source: the raw keyword text the lead
-- sent, or the reason staff gave (`detail`).
ALTER TABLE consent_events DROP CONSTRAINT consent_events_source_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_source_check
    CHECK (source ~ '^(keyword:.+|twilio_21610|staff:.+|list:.+)$');
ALTER TABLE consent_events ADD COLUMN detail text CHECK (detail IS NULL OR length(detail) <= 2000);

-- Phones staff removed from the firm's opt-out list (or a staff opt-out they lifted):
-- a re-import of a list skips them unless run with --force. One row per (firm, phone),
-- the latest removal; a staff or forced re-add deletes it.
CREATE TABLE optout_removals (
    firm_id     bigint NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    phone_e164  text NOT NULL CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    source      text NOT NULL,
    removed_by  text NOT NULL,
    removed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (firm_id, phone_e164)
);

-- The firm's answer to HELP/INFO when Twilio's Advanced Opt-Out does not answer it;
-- NULL: the default text naming the firm.
ALTER TABLE firms ADD COLUMN help_text text CHECK (help_text IS NULL OR length(help_text) BETWEEN 1 AND 1600);

-- When each phone last got the help text: at most one reply a day per (firm, phone).
CREATE TABLE help_replies (
    firm_id     bigint NOT NULL REFERENCES firms (id) ON DELETE CASCADE,
    phone_e164  text NOT NULL,
    replied_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    message_id  bigint,
    PRIMARY KEY (firm_id, phone_e164)
);
