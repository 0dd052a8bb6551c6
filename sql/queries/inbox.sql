-- name: store_inbox_event$
-- The webhook's one statement: the verified event stored once, and the settlers woken (NOTIFY is delivered
-- when this statement's transaction commits). Returns the new row's id, or nothing for an event already stored
-- (pending or acted on).
WITH stored AS (
    INSERT INTO heleket_inbox (uuid, status, is_final, order_id, payload)
    VALUES ($1, $2, $3, $4, $5::jsonb)
    ON CONFLICT (uuid, status, is_final) WHERE state <> 'refused' DO NOTHING
    RETURNING id
)
SELECT id, pg_notify('shopbot_heleket_inbox', id::text) AS woken FROM stored;

-- name: claim_inbox_events
-- A batch of due events for one settler; the row locks are held until its transaction ends, and any other
-- settler skips them. A settler that dies releases them with its connection: nothing is lost or taken twice.
SELECT id, payload, attempts, received_at
FROM heleket_inbox
WHERE state = 'pending' AND next_at <= now()
ORDER BY next_at, id
LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: finish_inbox_events!
-- What became of each claimed event: $2 its state, $3 the outcome, $4 seconds until it is tried again (pending).
UPDATE heleket_inbox AS i
SET state = u.state,
    outcome = u.outcome,
    attempts = i.attempts + 1,
    next_at = now() + u.delay * interval '1 second',
    settled_at = CASE WHEN u.state = 'pending' THEN NULL ELSE now() END
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::float8[]) AS u(id, state, outcome, delay)
WHERE i.id = u.id;

-- name: next_inbox_due$
-- Seconds until the earliest pending event falls due (NULL: none pending), so a settler sleeps no longer.
SELECT extract(epoch FROM min(next_at) - now())::float8 FROM heleket_inbox WHERE state = 'pending';
