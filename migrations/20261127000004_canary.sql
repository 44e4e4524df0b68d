-- Canary rollouts: manual promote/abort requests for the driver, and every analysis it ran.

-- Set by a user (or by a newer deployment of the same service and environment); the driver acts on
-- it at its next tick, whichever replica it runs on.
ALTER TABLE deployments
    ADD COLUMN requested_action TEXT CHECK (requested_action IN ('promote', 'abort', 'supersede')),
    ADD COLUMN requested_by     UUID REFERENCES users (id) ON DELETE SET NULL;

-- One row per analysis. The key makes a second driver's duplicate run fail instead of counting twice;
-- `replica` says who measured.
CREATE TABLE canary_analyses (
    deployment_id BIGINT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    step_seq      INTEGER NOT NULL,
    run           INTEGER NOT NULL,
    weight        INTEGER NOT NULL,
    error_rate    DOUBLE PRECISION,
    requests      DOUBLE PRECISION,
    decision      TEXT NOT NULL,
    detail        TEXT NOT NULL DEFAULT '',
    query         TEXT NOT NULL,
    replica       TEXT NOT NULL,
    measured_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, step_seq, run),
    FOREIGN KEY (deployment_id, step_seq) REFERENCES deployment_steps (deployment_id, seq) ON DELETE CASCADE
);

-- A deployment waits while another of the same service and environment is being driven.
CREATE INDEX deployments_active_target ON deployments (service_id, environment_id) WHERE state = 'in_progress';
