-- Notifications (#22): where a project's events go, the durable outbox of events, and one delivery
-- per (event, destination), which is the delivery worker's queue and the dashboard's delivery log.

CREATE TABLE notification_destinations (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id  UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (name ~ '^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$'),
    kind        TEXT NOT NULL CHECK (kind IN ('slack', 'discord', 'webhook', 'email')),
    -- What the dashboard may show of where it goes: a URL's scheme and host, or the recipients.
    target_hint TEXT NOT NULL,
    -- Sealed (crypto::SecretBox, the row id as associated data): the URL of a Slack, Discord or
    -- generic webhook (a Slack or Discord URL is itself the credential), never shown again.
    url_nonce       BYTEA,
    url_ciphertext  BYTEA,
    -- Sealed: the generic webhook's signing secret (`whsec_…`), shown once at creation.
    signing_nonce      BYTEA,
    signing_ciphertext BYTEA,
    recipients  TEXT[] NOT NULL DEFAULT '{}',
    -- Event types this destination receives (notify::EventKind's names).
    events      TEXT[] NOT NULL,
    -- Environment names it is limited to; NULL: all (and events without an environment).
    environments TEXT[],
    -- `failing` after `notifications.failing_after` failed attempts in a row; any success resets.
    failing     BOOLEAN NOT NULL DEFAULT false,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    -- The rate limit's fixed window: when it started and how many messages went out in it.
    window_started_at TIMESTAMPTZ,
    window_sent       INTEGER NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by  UUID REFERENCES users (id) ON DELETE SET NULL,
    UNIQUE (project_id, name),
    CHECK ((kind = 'email') = (url_ciphertext IS NULL)),
    CHECK ((kind = 'webhook') = (signing_ciphertext IS NOT NULL)),
    CHECK (kind <> 'email' OR cardinality(recipients) > 0)
);

-- The outbox: written in the same transaction as the state change it reports. The id is the
-- `webhook-id` receivers deduplicate by.
CREATE TABLE notification_events (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id  UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    environment TEXT,
    -- What happened, where and why (notify::Facts), rendered per destination format at delivery.
    facts       JSONB NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX notification_events_by_project ON notification_events (project_id, occurred_at DESC);

CREATE TABLE notification_deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        UUID NOT NULL REFERENCES notification_events (id) ON DELETE CASCADE,
    destination_id  UUID NOT NULL REFERENCES notification_destinations (id) ON DELETE CASCADE,
    -- pending: to send (again) at next_attempt_at; held: over the rate limit, goes out in the next
    -- digest; digested: went out inside digest_event_id's message; delivered; failed: gave up.
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'held', 'digested', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_status     INTEGER,
    last_error      TEXT,
    digest_event_id UUID REFERENCES notification_events (id) ON DELETE SET NULL,
    lease_owner     TEXT,
    lease_until     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ,
    -- Once per destination, whatever restarts or retries happen.
    UNIQUE (event_id, destination_id)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at, id)
    WHERE state IN ('pending', 'held');
CREATE INDEX notification_deliveries_log ON notification_deliveries (destination_id, id DESC);

-- Open alerts of the status prober: a target is announced unhealthy once, and recovered once.
CREATE TABLE status_alerts (
    target          TEXT PRIMARY KEY,
    unhealthy_since TIMESTAMPTZ NOT NULL
);
