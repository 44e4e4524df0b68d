-- The platform model: who (users, memberships, API tokens), what (projects, environments, services,
-- spec revisions), and what ran (releases, deployments and their steps), plus configuration
-- (environment variables and secrets, domains).

CREATE TABLE users (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Identity as the provider asserts it; (issuer, subject) is the stable key, email may change.
    issuer         TEXT NOT NULL,
    subject        TEXT NOT NULL,
    email          TEXT,
    display_name   TEXT NOT NULL,
    platform_admin BOOLEAN NOT NULL DEFAULT false,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (issuer, subject)
);

-- Long-lived credentials for the CLI and automation. Only a SHA-256 of the secret is stored; the
-- prefix (first characters of the token) lets a user recognise a token in lists.
CREATE TABLE api_tokens (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    secret_hash  BYTEA NOT NULL UNIQUE,
    scopes       TEXT[] NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id, created_at DESC);

CREATE TABLE projects (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        TEXT NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'),
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by  UUID REFERENCES users (id) ON DELETE SET NULL
);

CREATE TABLE memberships (
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE environments (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       TEXT NOT NULL CHECK (name ~ '^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$'),
    -- Each environment owns one Kubernetes namespace, on the cluster configuration names.
    namespace  TEXT NOT NULL UNIQUE,
    cluster    TEXT NOT NULL DEFAULT 'default',
    -- Pushes to this branch deploy here automatically (services with autoDeploy).
    deploy_branch TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

CREATE TABLE services (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id          UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    -- Denormalised from the current revision for the webhook's lookup by repository and branch.
    git_repository      TEXT,
    git_branch          TEXT,
    git_path            TEXT,
    auto_deploy         BOOLEAN NOT NULL DEFAULT false,
    current_revision    INTEGER NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);
CREATE INDEX services_by_repository ON services (git_repository, git_branch) WHERE auto_deploy;

-- Every import is kept. `source` is the file exactly as imported; `spec` its parsed form.
CREATE TABLE spec_revisions (
    service_id    UUID NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    revision      INTEGER NOT NULL CHECK (revision > 0),
    source        TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    spec          JSONB NOT NULL,
    extra_objects JSONB NOT NULL DEFAULT '[]'::jsonb,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by    UUID REFERENCES users (id) ON DELETE SET NULL,
    PRIMARY KEY (service_id, revision)
);

CREATE TABLE releases (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    service_id      UUID NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    spec_revision   INTEGER NOT NULL,
    image_ref       TEXT NOT NULL,
    image_digest    TEXT CHECK (image_digest IS NULL OR image_digest ~ '^sha256:[0-9a-f]{64}$'),
    git_repository  TEXT,
    git_commit      TEXT,
    sbom_ref        TEXT,
    provenance_ref  TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by      UUID REFERENCES users (id) ON DELETE SET NULL,
    FOREIGN KEY (service_id, spec_revision) REFERENCES spec_revisions (service_id, revision)
);
CREATE INDEX releases_by_service ON releases (service_id, created_at DESC, id DESC);

CREATE TABLE deployments (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id     UUID NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    environment_id UUID NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    release_id     UUID NOT NULL REFERENCES releases (id),
    strategy       TEXT NOT NULL CHECK (strategy IN ('canary', 'rolling', 'rollback')),
    state          TEXT NOT NULL CHECK (state IN ('pending', 'in_progress', 'succeeded', 'failed', 'rolled_back', 'aborted', 'superseded')),
    state_reason   TEXT,
    -- How traffic is split (recorded so the history says which mechanism ran).
    traffic_split  TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by     UUID REFERENCES users (id) ON DELETE SET NULL,
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    -- Single driver across replicas: the replica holding an unexpired lease drives the rollout.
    lease_owner    TEXT,
    lease_until    TIMESTAMPTZ
);
CREATE INDEX deployments_by_service ON deployments (service_id, id DESC);
CREATE INDEX deployments_by_environment ON deployments (environment_id, id DESC);
CREATE INDEX deployments_unfinished ON deployments (id) WHERE state IN ('pending', 'in_progress');

CREATE TABLE deployment_steps (
    deployment_id BIGINT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    state         TEXT NOT NULL,
    weight        INTEGER,
    message       TEXT NOT NULL DEFAULT '',
    evidence      JSONB NOT NULL DEFAULT '{}'::jsonb,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ,
    PRIMARY KEY (deployment_id, seq)
);

-- Plain values, encrypted secrets (AES-256-GCM; the key is configuration, never in the database),
-- or references to Kubernetes Secrets that Enclii never reads.
CREATE TABLE env_vars (
    service_id     UUID NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    environment_id UUID NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('plain', 'secret', 'secret_ref')),
    value          TEXT,
    ciphertext     BYTEA,
    nonce          BYTEA,
    ref_name       TEXT,
    ref_key        TEXT,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by     UUID REFERENCES users (id) ON DELETE SET NULL,
    PRIMARY KEY (service_id, environment_id, name),
    CHECK ((kind = 'plain' AND value IS NOT NULL)
        OR (kind = 'secret' AND ciphertext IS NOT NULL AND nonce IS NOT NULL)
        OR (kind = 'secret_ref' AND ref_name IS NOT NULL AND ref_key IS NOT NULL))
);

CREATE TABLE domains (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    service_id         UUID NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    environment_id     UUID NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    hostname           TEXT NOT NULL UNIQUE,
    tls                BOOLEAN NOT NULL DEFAULT true,
    tls_issuer         TEXT,
    -- The TXT record value that proves control of the domain.
    verification_token TEXT NOT NULL,
    verified_at        TIMESTAMPTZ,
    last_checked_at    TIMESTAMPTZ,
    last_check_error   TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX domains_by_service ON domains (service_id);

ALTER TABLE audit_events ADD CONSTRAINT audit_events_project_fk
    FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE SET NULL;
