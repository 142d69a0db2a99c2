-- The sendable decision (docs/send-pipeline.md), as one SQL definition used by the picker, thread
-- open, GET /v1/leads/{id} and the send path. NULL means sendable; otherwise the code of
-- the first row of the sendable table that matches, in the table's order.
CREATE FUNCTION send_block_code(p_firm_id bigint, p_phone_status text, p_phone_e164 text)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_phone_status = 'missing' THEN 'no_phone'
        WHEN p_phone_status = 'pending' THEN 'pending'
        WHEN p_phone_status = 'invalid' OR pl.valid IS FALSE THEN 'invalid_phone'
        WHEN pl.line_type = 'landline' THEN 'landline'
        WHEN pf.opted_out THEN 'opted_out'
        WHEN pf.review_pending THEN 'review_opt_out'
        WHEN pf.blocked THEN 'blocked'
    END
    FROM (SELECT 1) AS one
    LEFT JOIN phone_lines pl ON pl.phone_e164 = p_phone_e164
    LEFT JOIN phone_flags pf ON pf.firm_id = p_firm_id AND pf.phone_e164 = p_phone_e164
$$;
