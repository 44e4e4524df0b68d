-- One-off runs (`enclii run`): who ran what, from which deployment's release, and how it ended.
-- The command is kept (it is what the audit log must show); the variables it ran with are not.
CREATE TABLE job_runs (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id     UUID NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    environment_id UUID NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    deployment_id  BIGINT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    command        JSONB NOT NULL,
    job_name       TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'timed_out')),
    exit_code      INTEGER,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by     UUID REFERENCES users (id) ON DELETE SET NULL,
    finished_at    TIMESTAMPTZ
);
CREATE INDEX job_runs_by_service ON job_runs (service_id, id DESC);

-- Scheduled jobs that failed a run or missed their schedule, once each (the notifications issue
-- sends these): `run_key` is the failed Job's name, or the scheduled minute that went by.
CREATE TABLE job_events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id     UUID NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    environment_id UUID NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    job_name       TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('failed', 'missed')),
    run_key        TEXT NOT NULL,
    detail         TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (service_id, environment_id, job_name, kind, run_key)
);
