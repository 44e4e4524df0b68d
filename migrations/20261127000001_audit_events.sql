-- The audit log: one row per change or security-relevant event (sign-in, denied access, token use).
-- Append-only: the application never updates or deletes rows here.
CREATE TABLE audit_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Who: a user id, an API token id, or a system actor such as 'pipeline'; NULL for anonymous.
    actor_kind  TEXT NOT NULL CHECK (actor_kind IN ('user', 'api_token', 'system', 'anonymous')),
    actor_id    TEXT,
    actor_label TEXT NOT NULL,
    -- What: a dotted verb ('project.create', 'auth.sign_in', 'access.denied') and its target.
    action      TEXT NOT NULL,
    target_kind TEXT,
    target_id   TEXT,
    project_id  UUID,
    -- From where: the client's address as seen by the server.
    client_addr INET,
    -- Details specific to the action; never secret values.
    details     JSONB NOT NULL DEFAULT '{}'::jsonb
);

-- The activity page lists newest first, optionally per project or per action (keyset on id).
CREATE INDEX audit_events_recent ON audit_events (id DESC);
CREATE INDEX audit_events_by_project ON audit_events (project_id, id DESC) WHERE project_id IS NOT NULL;
CREATE INDEX audit_events_by_action ON audit_events (action, id DESC);
