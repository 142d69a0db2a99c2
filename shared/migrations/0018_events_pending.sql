-- Events wait for their numbers in a table of their own (events/log.py writes here).
--
-- Until now an event was inserted into `events` with seq NULL and the commit trigger
-- UPDATEd it with its number: every event was written twice, the second time a new row
-- version in every index of `events` (seq is indexed, so no HOT update) and a dead row
-- for vacuum. Now the transaction writes its events to `events_pending`, and the commit
-- trigger moves them into `events` once, numbered: one insert into `events` per event.
--
-- The rule of 0011 is unchanged: the firm's counter row is taken at COMMIT, in firm-id
-- order, and held until the commit is done, so cursors never skip.
--
-- `events_pending` is UNLOGGED: a row in it lives only inside the transaction that wrote
-- it (its commit moves it out, a rollback removes it), so nothing in it is ever worth a
-- WAL record or survives a crash that would need it.

CREATE UNLOGGED TABLE events_pending (
    id       bigserial PRIMARY KEY,
    firm_id  bigint NOT NULL,
    type     text NOT NULL,
    data     jsonb NOT NULL,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    txid     bigint NOT NULL DEFAULT txid_current()
);
CREATE INDEX events_pending_txid ON events_pending (txid);

-- At COMMIT (deferred), for each pending row. The first call moves and numbers every
-- pending row of the transaction and notes the highest id it moved (a transaction-local
-- setting); the other calls compare their row's id with it, no query. A row written after
-- an early move (SET CONSTRAINTS … IMMEDIATE, then more events) has a higher id, so its
-- call moves again.
CREATE FUNCTION events_move_pending() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    me bigint := txid_current();
    moved_through bigint := coalesce(nullif(current_setting('leadsms.events_moved_through', true), ''), '0')::bigint;
    firms bigint[];
    counts bigint[];
    tops bigint[];
    top bigint;
    last_id bigint;
BEGIN
    IF NEW.id <= moved_through THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(firm_id ORDER BY firm_id), array_agg(n ORDER BY firm_id), max(last)
      INTO firms, counts, last_id
      FROM (SELECT firm_id, count(*) AS n, max(id) AS last FROM events_pending WHERE txid = me GROUP BY firm_id) p;
    IF firms IS NULL THEN
        RETURN NULL;
    END IF;
    tops := '{}';
    FOR i IN 1 .. array_length(firms, 1) LOOP  -- in firm-id order: no deadlock between two commits
        INSERT INTO event_counters AS c (firm_id, last_seq) VALUES (firms[i], counts[i])
        ON CONFLICT (firm_id) DO UPDATE SET last_seq = c.last_seq + EXCLUDED.last_seq
        RETURNING last_seq INTO top;
        tops := tops || top;
    END LOOP;
    WITH moved AS (DELETE FROM events_pending WHERE txid = me RETURNING id, firm_id, type, data, at)
    INSERT INTO events (firm_id, seq, type, data, at, txid)
    SELECT m.firm_id, c.top - c.n + row_number() OVER (PARTITION BY m.firm_id ORDER BY m.id), m.type, m.data, m.at, me
    FROM moved m JOIN unnest(firms, counts, tops) AS c(firm_id, n, top) ON c.firm_id = m.firm_id
    ORDER BY m.id;
    PERFORM set_config('leadsms.events_moved_through', last_id::text, true);
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER events_pending_move_at_commit
    AFTER INSERT ON events_pending
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION events_move_pending();

-- Rows written to `events` itself without a number (a process of the previous release,
-- during a rolling deploy) are still numbered at commit by 0011's trigger; the rows moved
-- in above carry their number and no longer queue a call of it.
DROP TRIGGER events_number_at_commit ON events;
CREATE CONSTRAINT TRIGGER events_number_at_commit
    AFTER INSERT ON events
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.seq IS NULL) EXECUTE FUNCTION events_number_pending();
