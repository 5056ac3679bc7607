-- Cluster context: what the cluster said about an incident's workload, gathered once when it
-- opened (the `context` timer) and told to its Slack apps (the `context_ready` timers).

-- The kinds are added to those the constraint allows now, whichever migration wrote it last,
-- so that kinds another migration added stay.
DO $$
DECLARE
    kinds text[];
BEGIN
    SELECT array_agg(DISTINCT kind ORDER BY kind) INTO kinds FROM (
        SELECT (regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g'))[1] AS kind
          FROM pg_constraint c
         WHERE c.conrelid = 'timers'::regclass AND c.conname = 'timers_kind_check'
        UNION SELECT unnest(ARRAY['context', 'context_ready'])) k;
    ALTER TABLE timers DROP CONSTRAINT timers_kind_check;
    EXECUTE format('ALTER TABLE timers ADD CONSTRAINT timers_kind_check CHECK (kind IN (%s))',
                   (SELECT string_agg(quote_literal(k), ', ') FROM unnest(kinds) k));
END $$;

-- One per incident, written once: `body` is what GET /api/v1/incidents/{id}/context serves,
-- `summary` the short form pages carry (read with every claimed timer, so kept small).
CREATE TABLE incident_context (
    incident_id bigint      PRIMARY KEY REFERENCES incidents (id),
    gathered_at timestamptz NOT NULL,
    complete    boolean     NOT NULL,
    body        jsonb       NOT NULL,
    summary     jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
