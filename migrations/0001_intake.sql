-- Intake: Alertmanager groups, their incidents (firing episodes), alerts and deliveries.

-- One row per (receiver, groupKey). Every delivery locks its group's row first (creating it
-- if need be): deliveries of one group are serialised, deliveries of different groups are not.
CREATE TABLE alert_groups (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    receiver      text        NOT NULL,
    group_key     text        NOT NULL,
    group_labels  jsonb       NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (receiver, group_key)
);

-- One firing episode of one group: from its first firing alert until all of them resolved.
CREATE TABLE incidents (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id           bigint      NOT NULL REFERENCES alert_groups (id),
    status             text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- Last change of state (alerts added or resolved); repeats do not touch the row.
    updated_at         timestamptz NOT NULL DEFAULT now(),
    resolved_at        timestamptz,
    common_labels      jsonb       NOT NULL,
    common_annotations jsonb       NOT NULL,
    external_url       text        NOT NULL,
    truncated_alerts   bigint      NOT NULL DEFAULT 0,
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
-- At most one open incident per group, whatever races happen.
CREATE UNIQUE INDEX incidents_one_firing_per_group ON incidents (group_id) WHERE status = 'firing';
CREATE INDEX incidents_by_status ON incidents (status, id DESC);

-- One firing episode of one alert (fingerprint + startsAt) within a group. An episode
-- belongs to the incident during which it was first seen and never moves.
-- No foreign keys here: only medic_record_notification writes this table, with ids it holds
-- under the group's lock, and the two checks per row cost a fifth of its insert time.
CREATE TABLE alerts (
    incident_id   bigint      NOT NULL,
    group_id      bigint      NOT NULL,
    fingerprint   text        NOT NULL,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz,
    status        text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    labels        jsonb       NOT NULL,
    annotations   jsonb       NOT NULL,
    generator_url text        NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, fingerprint, starts_at)
);
-- No index on incident_id: an incident's alerts are read through its group (the key's
-- prefix), which spares every alert insert one index entry.

-- Every notification received, duplicates included; an incident's delivery count is read here.
CREATE TABLE deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id      bigint      NOT NULL REFERENCES incidents (id),
    received_at      timestamptz NOT NULL DEFAULT now(),
    status           text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    alerts           integer     NOT NULL,
    new_alerts       integer     NOT NULL,
    resolved_alerts  integer     NOT NULL,
    truncated_alerts bigint      NOT NULL,
    duplicate        boolean     NOT NULL
);
CREATE INDEX deliveries_by_incident ON deliveries (incident_id);
