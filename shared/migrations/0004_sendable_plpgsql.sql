-- The sendable decision (0002) again, word for word the same rule, in PL/pgSQL.
--
-- Why: 0002's body is a SQL function with a FROM clause, which PostgreSQL cannot inline,
-- so every call parses and plans its two-join query afresh. The send path calls it in
-- `conversation_for_send` and four times in `claim_message` (the planner copies the
-- LATERAL expression into each SET column), the picker once per candidate phone, the
-- conversation list once per row. PL/pgSQL plans its two lookups once per session and
-- reuses them: in `leadsms bench send` PostgreSQL's CPU per message fell from 2.1-2.4 ms
-- to 1.4 ms (claim 0.62 -> 0.26 ms, sendable read 0.21 -> 0.05 ms). See
-- docs/benchmarks.md.
--
-- Same arguments, result and order of checks as 0002 (docs/send-pipeline.md's sendable table): NULL means
-- sendable, else the code of the first row that matches. A condition that is NULL counts
-- as not matching, as in 0002's CASE.
CREATE OR REPLACE FUNCTION send_block_code(p_firm_id bigint, p_phone_status text, p_phone_e164 text)
RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    v_valid boolean;
    v_line_type text;
    v_opted_out boolean;
    v_review_pending boolean;
    v_blocked boolean;
BEGIN
    IF p_phone_status = 'missing' THEN RETURN 'no_phone'; END IF;
    IF p_phone_status = 'pending' THEN RETURN 'pending'; END IF;
    SELECT pl.valid, pl.line_type INTO v_valid, v_line_type
    FROM phone_lines pl WHERE pl.phone_e164 = p_phone_e164;
    IF p_phone_status = 'invalid' OR v_valid IS FALSE THEN RETURN 'invalid_phone'; END IF;
    IF v_line_type = 'landline' THEN RETURN 'landline'; END IF;
    SELECT pf.opted_out, pf.review_pending, pf.blocked INTO v_opted_out, v_review_pending, v_blocked
    FROM phone_flags pf WHERE pf.firm_id = p_firm_id AND pf.phone_e164 = p_phone_e164;
    IF v_opted_out THEN RETURN 'opted_out'; END IF;
    IF v_review_pending THEN RETURN 'review_opt_out'; END IF;
    IF v_blocked THEN RETURN 'blocked'; END IF;
    RETURN NULL;
END
$$;
