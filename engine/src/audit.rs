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
