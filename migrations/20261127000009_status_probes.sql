-- The public status page: every probe of a monitored endpoint (a status spec's
-- `monitoring.targets`) or of a service's health check, kept 90 days for the uptime bars.
CREATE TABLE status_probes (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Stable key of what was probed: `target:<project>/<service>/<name>` or
    -- `service:<project>/<service>/<environment>`.
    target      TEXT NOT NULL,
    checked_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    ok          BOOLEAN NOT NULL,
    status_code INTEGER,
    latency_ms  INTEGER NOT NULL,
    -- Why a probe failed, in words (never a URL with credentials: targets are public endpoints).
    detail      TEXT NOT NULL DEFAULT ''
);
-- Latest probe per target and the per-day aggregation both read by (target, time).
CREATE INDEX status_probes_by_target ON status_probes (target, checked_at DESC);
CREATE INDEX status_probes_by_time ON status_probes (checked_at);

-- What the status page lists: the prober replaces this set each time it reads the specs, so a
-- target removed from its spec (or a service no longer deployed) leaves the page.
CREATE TABLE status_targets (
    target   TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    kind     TEXT NOT NULL CHECK (kind IN ('endpoint', 'service')),
    position INTEGER NOT NULL
);

-- Probes counted per target and UTC day, updated with each probe, so that 90 days of uptime bars
-- read at most 90 rows per target however often it is probed.
CREATE TABLE status_daily (
    target TEXT NOT NULL,
    day    DATE NOT NULL,
    ok     INTEGER NOT NULL DEFAULT 0,
    total  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (target, day)
);
