-- Continuous deployment: repositories connected to projects (each with its webhook secret), every
-- webhook delivery and its outcome, and the build queue.

CREATE TABLE repositories (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id        UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- Normalised (`https://github.com/owner/name`), as services store their source.
    url               TEXT NOT NULL,
    -- The webhook secret, AES-256-GCM sealed like secret env values; shown once, at connection.
    secret_ciphertext BYTEA NOT NULL,
    secret_nonce      BYTEA NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by        UUID REFERENCES users (id) ON DELETE SET NULL,
    UNIQUE (project_id, url)
);
CREATE INDEX repositories_by_url ON repositories (url);

-- One row per X-GitHub-Delivery: a redelivery of a verified one changes nothing.
CREATE TABLE webhook_deliveries (
    delivery_id  TEXT PRIMARY KEY,
    event        TEXT NOT NULL,
    repository   TEXT,
    git_ref      TEXT,
    commit_sha   TEXT,
    project_id   UUID REFERENCES projects (id) ON DELETE SET NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('accepted', 'ignored', 'rejected')),
    reason       TEXT NOT NULL DEFAULT '',
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_by_project ON webhook_deliveries (project_id, received_at DESC);

CREATE TABLE builds (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id      UUID NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    environment_id  UUID NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    spec_revision   INTEGER NOT NULL,
    delivery_id     TEXT REFERENCES webhook_deliveries (delivery_id) ON DELETE SET NULL,
    git_repository  TEXT NOT NULL,
    -- A commit SHA (pushes) or a branch (manual builds of a branch's head).
    git_ref         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'superseded')),
    state_reason    TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_owner     TEXT,
    lease_until     TIMESTAMPTZ,
    job_name        TEXT,
    image_ref       TEXT,
    image_digest    TEXT,
    sbom_ref        TEXT,
    provenance_ref  TEXT,
    release_id      UUID REFERENCES releases (id) ON DELETE SET NULL,
    deployment_id   BIGINT REFERENCES deployments (id) ON DELETE SET NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by      UUID REFERENCES users (id) ON DELETE SET NULL,
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    FOREIGN KEY (service_id, spec_revision) REFERENCES spec_revisions (service_id, revision)
);
CREATE INDEX builds_queue ON builds (next_attempt_at, id) WHERE state = 'queued';
CREATE INDEX builds_running ON builds (id) WHERE state = 'running';
CREATE INDEX builds_by_service ON builds (service_id, id DESC);
CREATE INDEX builds_by_delivery ON builds (delivery_id);
