-- Deployment gates: promotion between environments, approvals, freeze windows.

-- `awaiting_approval` comes before `pending` for an environment that requires approvals: the
-- workers claim only `pending`, so no approval means nothing is applied. `rejected` ends one an
-- approver refused.
ALTER TABLE deployments DROP CONSTRAINT deployments_state_check;
ALTER TABLE deployments ADD CONSTRAINT deployments_state_check CHECK (state IN (
    'awaiting_approval', 'pending', 'in_progress', 'succeeded', 'failed', 'rolled_back', 'aborted',
    'superseded', 'rejected'));

ALTER TABLE deployments
    -- The deployment of another environment whose release this one promoted.
    ADD COLUMN promoted_from      BIGINT REFERENCES deployments (id) ON DELETE SET NULL,
    -- The environment's approval policy when the deployment was requested (changing the policy
    -- later does not move the goalposts of a deployment already waiting).
    ADD COLUMN approvals_required INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN approver_role      TEXT CHECK (approver_role IN ('developer', 'admin', 'owner')),
    -- A pending deployment held by a freeze window: the claim skips it until then.
    ADD COLUMN held_until         TIMESTAMPTZ,
    -- A platform admin let it through a freeze, with a reason.
    ADD COLUMN forced_by          UUID REFERENCES users (id) ON DELETE SET NULL,
    ADD COLUMN force_reason       TEXT;
CREATE INDEX deployments_waiting ON deployments (environment_id) WHERE state IN ('awaiting_approval', 'pending');

ALTER TABLE environments
    ADD COLUMN required_approvals INTEGER NOT NULL DEFAULT 0 CHECK (required_approvals BETWEEN 0 AND 10),
    ADD COLUMN approver_role      TEXT NOT NULL DEFAULT 'admin' CHECK (approver_role IN ('developer', 'admin', 'owner'));

-- One decision per person per deployment: each approver counts once.
CREATE TABLE deployment_approvals (
    deployment_id BIGINT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    approved      BOOLEAN NOT NULL,
    -- The approver's role when they decided (`platform admin` without a project role).
    role          TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    decided_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, user_id)
);

-- Recurring (a cron schedule on the wall clock of `timezone`, each occurrence lasting
-- `duration_minutes` of wall-clock time) or one-off (`starts_at` to `ends_at`).
CREATE TABLE freeze_windows (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    environment_id   UUID NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    cron             TEXT,
    duration_minutes INTEGER CHECK (duration_minutes > 0),
    starts_at        TIMESTAMPTZ,
    ends_at          TIMESTAMPTZ,
    timezone         TEXT NOT NULL,
    reason           TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by       UUID REFERENCES users (id) ON DELETE SET NULL,
    CHECK ((cron IS NOT NULL AND duration_minutes IS NOT NULL AND starts_at IS NULL AND ends_at IS NULL)
        OR (cron IS NULL AND duration_minutes IS NULL AND starts_at IS NOT NULL AND ends_at > starts_at))
);
CREATE INDEX freeze_windows_by_environment ON freeze_windows (environment_id);
