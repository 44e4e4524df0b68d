//! The audit log: who did what, to what, from where. Written in the same transaction as the change
//! it records, so a change is never without its record.

use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::auth::Caller;

pub struct Event<'a> {
    pub action: &'a str,
    pub target_kind: Option<&'a str>,
    pub target_id: Option<String>,
    pub project_id: Option<Uuid>,
    pub details: Value,
}

impl<'a> Event<'a> {
    pub fn new(action: &'a str) -> Self {
        Self {
            action,
            target_kind: None,
            target_id: None,
            project_id: None,
            details: Value::Object(Default::default()),
        }
    }
    pub fn target(mut self, kind: &'a str, id: impl Into<String>) -> Self {
        self.target_kind = Some(kind);
        self.target_id = Some(id.into());
        self
    }
    pub fn project(mut self, id: Uuid) -> Self {
        self.project_id = Some(id);
        self
    }
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// Records `event` as done by `caller` (None: anonymous).
pub async fn record(
    db: impl PgExecutor<'_>,
    caller: Option<&Caller>,
    event: Event<'_>,
) -> sqlx::Result<()> {
    let (kind, id, label, addr) = match caller {
        Some(c) => (
            c.via.actor_kind(),
            Some(c.actor_id()),
            c.display_name.clone(),
            c.client_addr.map(|a| a.to_string()),
        ),
        None => ("anonymous", None, "anonymous".to_owned(), None),
    };
    sqlx::query!(
        r#"INSERT INTO audit_events
               (actor_kind, actor_id, actor_label, action, target_kind, target_id, project_id, client_addr, details)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::inet, $9)"#,
        kind,
        id,
        label,
        event.action,
        event.target_kind,
        event.target_id,
        event.project_id,
        addr,
        event.details,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The audit log, newest first: one project's (its admins), or everything (platform admins).
pub async fn list(
    pool: &sqlx::PgPool,
    caller: Option<&Caller>,
    project: Option<&str>,
    action: Option<&str>,
    cursor: Option<i64>,
    limit: Option<u32>,
) -> crate::Result<enclii_api::Page<enclii_api::AuditEvent>> {
    use enclii_api::ApiError;
    let project_id = match project {
        Some(slug) => Some(
            crate::platform::project_access(pool, caller, slug, crate::auth::Action::ViewAudit)
                .await?
                .id,
        ),
        None => {
            crate::auth::authorize(caller, crate::auth::Action::ViewAudit, None)?;
            if !caller.is_some_and(|c| c.platform_admin) {
                return Err(ApiError::forbidden(
                    "only platform admins read the whole audit log; name a project you administer",
                )
                .into());
            }
            None
        }
    };
    let limit = crate::platform::page_limit(limit);
    let rows = sqlx::query!(
        r#"SELECT a.id, a.occurred_at, a.actor_label, a.action, a.target_kind, a.target_id, p.slug AS "project?",
                  host(a.client_addr) AS client_addr, a.details
           FROM audit_events a LEFT JOIN projects p ON p.id = a.project_id
           WHERE ($1::uuid IS NULL OR a.project_id = $1)
             AND ($2::text IS NULL OR a.action = $2 OR a.action LIKE $2 || '.%')
             AND a.id < COALESCE($3, 9223372036854775807)
           ORDER BY a.id DESC
           LIMIT $4"#,
        project_id,
        action,
        cursor,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    let items: Vec<enclii_api::AuditEvent> = rows
        .into_iter()
        .map(|r| enclii_api::AuditEvent {
            id: r.id,
            occurred_at: r.occurred_at,
            actor: r.actor_label,
            action: r.action,
            target: match (r.target_kind, r.target_id) {
                (Some(k), Some(i)) => Some(format!("{k}:{i}")),
                _ => None,
            },
            project: r.project,
            client_addr: r.client_addr,
            details: r.details,
        })
        .collect();
    Ok(crate::platform::keyset_page(items, limit, |e| {
        e.id.to_string()
    }))
}
