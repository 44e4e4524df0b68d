-- The public status page lists a project's monitoring targets and health checks only when the
-- project opts in (a row here): anyone who can sign in can create a project, and a stranger's
-- targets do not belong on the platform's public page unless its owners chose to publish them.
-- Projects without a row are neither listed nor probed.
CREATE TABLE status_public_projects (
    project_id   UUID PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    published_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_by UUID REFERENCES users (id) ON DELETE SET NULL
);

-- The platform's own projects (created by a platform admin) were listed before the opt-in existed:
-- they stay listed, so the platform's status page keeps its targets.
INSERT INTO status_public_projects (project_id, published_by)
SELECT p.id, p.created_by FROM projects p JOIN users u ON u.id = p.created_by WHERE u.platform_admin;
