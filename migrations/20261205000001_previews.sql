-- Preview environments: one per pull request of a connected repository and project, each with an
-- environment `pr-<number>` of its own (its namespace, variables, deployments), and what happened
-- to it, so that the Previews panel and `enclii previews list` can say why it sleeps or is gone.

CREATE TABLE previews (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id          UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- NULL once deleted: the environment row goes, with its deployments, builds and variables.
    environment_id      UUID REFERENCES environments (id) ON DELETE SET NULL,
    environment         TEXT NOT NULL,
    namespace           TEXT NOT NULL,
    repository          TEXT NOT NULL,
    pr_number           INTEGER NOT NULL CHECK (pr_number > 0),
    head_sha            TEXT NOT NULL CHECK (head_sha ~ '^[0-9a-f]{40,64}$'),
    head_ref            TEXT NOT NULL DEFAULT '',
    -- The services previewed (those whose spec opts in, and whose label the pull request has).
    services            TEXT[] NOT NULL DEFAULT '{}',
    state               TEXT NOT NULL CHECK (state IN ('awake', 'sleeping', 'deleting', 'deleted')),
    -- From the services' specs at the last event: the strictest of them.
    ttl_hours           INTEGER,
    sleep_after_minutes INTEGER,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The last deploy (opened, synchronize, reopened, labeled) or wake: idleness and TTL count
    -- from here.
    touched_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    slept_at            TIMESTAMPTZ,
    deleted_at          TIMESTAMPTZ,
    -- One replica acts on a preview at a time (sleep, delete): a conditional UPDATE takes this.
    busy_until          TIMESTAMPTZ
);
-- One live preview per pull request number and project (its environment is `pr-<number>`).
CREATE UNIQUE INDEX previews_live ON previews (project_id, pr_number) WHERE state <> 'deleted';
CREATE INDEX previews_by_project ON previews (project_id, id DESC);
CREATE INDEX previews_to_scan ON previews (id) WHERE state <> 'deleted';

CREATE TABLE preview_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    preview_id  BIGINT NOT NULL REFERENCES previews (id) ON DELETE CASCADE,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    message     TEXT NOT NULL
);
CREATE INDEX preview_events_by_preview ON preview_events (preview_id, id DESC);
