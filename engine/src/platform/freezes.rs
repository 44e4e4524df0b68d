//! Freeze windows: times during which an environment takes no new deployments. A window is
//! recurring (a cron schedule read on the wall clock of its IANA time zone, each occurrence lasting
//! a duration of wall-clock time: "every Friday 16:00 for 64h" ends Monday 08:00 whatever the
//! clocks did over the weekend) or one-off (`from`–`until`).
//!
//! The decision is [`frozen_at`], pure and tested over its table below (boundaries, overlapping
//! windows, daylight-saving gaps and repeats). It is taken when a deployment becomes pending
//! ([`hold`]: at its request, or when its approvals are complete) and again for every waiting
//! deployment when the environment's windows change ([`rehold`]): a held deployment stays
//! `pending` with `held_until` set, and the workers' claim skips it until then, so it proceeds by
//! itself when the freeze ends, with no second state for a worker to mistake. Rollbacks are never
//! held (they are the way out of an incident), and a platform admin may let one deployment through
//! with a reason ([`force`], audited).

use chrono::{DateTime, LocalResult, TimeZone, Utc};
use chrono_tz::Tz;
use enclii_api::{ActiveFreeze, ApiError, DeploymentSummary, FreezeWindow};
use enclii_spec::cron::{Minute, Schedule};
use sqlx::PgPool;
use uuid::Uuid;

use super::project_access;
use crate::audit;
use crate::auth::{Action, Caller};

/// When a window is in force.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    Recurring {
        schedule: Schedule,
        /// Wall-clock minutes each occurrence lasts.
        duration_minutes: i64,
        tz: Tz,
    },
    Once {
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub when: When,
    pub reason: String,
}

/// Why a window is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    #[error("the schedule is not a cron schedule: {0}")]
    Cron(String),
    #[error("the schedule `{0}` never fires")]
    NeverFires(String),
    #[error("`{0}` is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)")]
    UnknownZone(String),
    #[error("a freeze lasts from 1 minute to 31 days; {0} minutes is not that")]
    Duration(i64),
    #[error(
        "each occurrence ({duration} minutes) lasts longer than the time to the next one ({gap} minutes): the freeze would never end; use a one-off range instead"
    )]
    NeverEnds { duration: i64, gap: i64 },
    #[error("a window is either recurring (a schedule and a duration) or one-off (from and until)")]
    Shape,
    #[error("the window must end after it starts, and after now (it ends {0})")]
    Ended(String),
    #[error("give a reason: it is what people waiting for their deployment read")]
    NoReason,
}

impl From<WindowError> for ApiError {
    fn from(e: WindowError) -> Self {
        ApiError::invalid(e.to_string())
    }
}

const MAX_DURATION_MINUTES: i64 = 31 * 24 * 60;
/// Clock changes move wall time by at most this (Lord Howe's half hour, everyone else's hour, a
/// few historical two-hour changes): occurrences are looked for this much earlier.
const CLOCK_CHANGE_MARGIN: i64 = 3 * 60;

/// A recurring window, checked: the schedule parses and fires, the zone is known, and one
/// occurrence ends before the next begins (over the next sixty of them after `now`).
pub fn recurring(
    cron: &str,
    duration_minutes: i64,
    timezone: &str,
    now: DateTime<Utc>,
) -> Result<When, WindowError> {
    let schedule = Schedule::parse(cron).map_err(|e| WindowError::Cron(e.0))?;
    let tz: Tz = timezone
        .parse()
        .map_err(|_| WindowError::UnknownZone(timezone.to_owned()))?;
    if !(1..=MAX_DURATION_MINUTES).contains(&duration_minutes) {
        return Err(WindowError::Duration(duration_minutes));
    }
    let mut at = schedule
        .next_after(wall(tz, now))
        .ok_or_else(|| WindowError::NeverFires(cron.to_owned()))?;
    for _ in 0..60 {
        let Some(next) = schedule.next_after(at) else {
            break;
        };
        if next - at < duration_minutes {
            return Err(WindowError::NeverEnds {
                duration: duration_minutes,
                gap: next - at,
            });
        }
        at = next;
    }
    Ok(When::Recurring {
        schedule,
        duration_minutes,
        tz,
    })
}

/// A one-off window, checked: it ends after it starts and after `now`.
pub fn once(
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<When, WindowError> {
    if until <= from || until <= now {
        return Err(WindowError::Ended(until.to_rfc3339()));
    }
    Ok(When::Once { from, until })
}

/// `t` as minutes of `tz`'s wall clock since 1970-01-01 00:00.
fn wall(tz: Tz, t: DateTime<Utc>) -> Minute {
    t.with_timezone(&tz)
        .naive_local()
        .and_utc()
        .timestamp()
        .div_euclid(60)
}

/// The instant a wall-clock minute names in `tz`. A minute that occurs twice (clocks go back):
/// the first for a window's start, the second for its end, so that the freeze covers both. A
/// minute that does not exist (clocks jump forward): the first instant after the gap.
fn instant(tz: Tz, m: Minute, first: bool) -> DateTime<Utc> {
    for k in m..m + 24 * 60 {
        let naive = DateTime::from_timestamp(k * 60, 0)
            .unwrap_or_default()
            .naive_utc();
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(a, b) => {
                return if first { a.min(b) } else { a.max(b) }.with_timezone(&Utc);
            }
            LocalResult::None => continue,
        }
    }
    DateTime::from_timestamp(m * 60, 0).unwrap_or_default()
}

impl Window {
    /// When the occurrence in force at `t` ends (start inclusive, end exclusive); `None` when none is.
    pub fn in_force_until(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.when {
            When::Once { from, until } => (*from <= t && t < *until).then_some(*until),
            When::Recurring {
                schedule,
                duration_minutes,
                tz,
            } => {
                let mut after = wall(*tz, t) - duration_minutes - CLOCK_CHANGE_MARGIN;
                let mut found = None;
                // Occurrences in wall-clock order are in instant order too; a schedule that fires
                // every minute with a long duration is refused when added, so this stays short.
                for _ in 0..10_000 {
                    let Some(start) = schedule.next_after(after) else {
                        break;
                    };
                    if instant(*tz, start, true) > t {
                        break;
                    }
                    let end = instant(*tz, start + duration_minutes, false);
                    if t < end && found.is_none_or(|f| end > f) {
                        found = Some(end);
                    }
                    after = start;
                }
                found
            }
        }
    }
}

/// The freeze in force at `now`: until the end of every window in force then, and of every window
/// in force at that end (adjacent and overlapping windows are one freeze), with the reasons of
/// those in force now.
pub fn frozen_at(windows: &[Window], now: DateTime<Utc>) -> Option<ActiveFreeze> {
    let mut reasons: Vec<&str> = Vec::new();
    let mut until = None;
    for w in windows {
        if let Some(end) = w.in_force_until(now) {
            if !reasons.contains(&w.reason.as_str()) {
                reasons.push(&w.reason);
            }
            until = until.max(Some(end));
        }
    }
    let mut until = until?;
    // Bounded: each round moves the end later by a whole occurrence of some window.
    for _ in 0..100 {
        match windows.iter().filter_map(|w| w.in_force_until(until)).max() {
            Some(later) if later > until => until = later,
            _ => break,
        }
    }
    Some(ActiveFreeze {
        until,
        reason: reasons.join("; "),
    })
}

/// A window as stored.
struct WindowRow {
    id: Uuid,
    environment: String,
    cron: Option<String>,
    duration_minutes: Option<i32>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    timezone: String,
    reason: String,
}

impl WindowRow {
    /// The window to decide with; a row that no longer parses (time zone data changed) is left
    /// out and logged.
    fn window(&self) -> Option<Window> {
        let when = match (
            &self.cron,
            self.duration_minutes,
            self.starts_at,
            self.ends_at,
        ) {
            (Some(cron), Some(d), _, _) => {
                let schedule = Schedule::parse(cron).ok();
                let tz = self.timezone.parse::<Tz>().ok();
                match (schedule, tz) {
                    (Some(schedule), Some(tz)) => When::Recurring {
                        schedule,
                        duration_minutes: i64::from(d),
                        tz,
                    },
                    _ => {
                        tracing::warn!(window = %self.id, "a freeze window no longer parses; it is ignored");
                        return None;
                    }
                }
            }
            (None, None, Some(from), Some(until)) => When::Once { from, until },
            _ => return None,
        };
        Some(Window {
            when,
            reason: self.reason.clone(),
        })
    }

    fn wire(self) -> FreezeWindow {
        let description = match (
            &self.cron,
            self.duration_minutes,
            self.starts_at,
            self.ends_at,
        ) {
            (Some(cron), Some(d), _, _) => format!(
                "every `{cron}` ({}) for {}",
                self.timezone,
                duration_text(i64::from(d))
            ),
            (_, _, Some(from), Some(until)) => format!(
                "from {} to {}",
                from.format("%Y-%m-%d %H:%M UTC"),
                until.format("%Y-%m-%d %H:%M UTC")
            ),
            _ => String::new(),
        };
        FreezeWindow {
            id: self.id.to_string(),
            environment: self.environment,
            cron: self.cron,
            duration_minutes: self.duration_minutes,
            from: self.starts_at,
            until: self.ends_at,
            timezone: self.timezone,
            reason: self.reason,
            description,
        }
    }
}

/// `64h`, `90m`, `1h30m`.
fn duration_text(minutes: i64) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m}m"),
    }
}

async fn rows(db: impl sqlx::PgExecutor<'_>, project_id: Uuid) -> sqlx::Result<Vec<WindowRow>> {
    sqlx::query_as!(
        WindowRow,
        "SELECT f.id, e.name AS environment, f.cron, f.duration_minutes, f.starts_at, f.ends_at, f.timezone, f.reason
         FROM freeze_windows f JOIN environments e ON e.id = f.environment_id
         WHERE e.project_id = $1 ORDER BY e.name, f.created_at, f.id",
        project_id
    )
    .fetch_all(db)
    .await
}

/// The freeze in force now in an environment.
pub(crate) async fn active(
    db: impl sqlx::PgExecutor<'_>,
    environment_id: Uuid,
) -> sqlx::Result<Option<ActiveFreeze>> {
    let rows = sqlx::query_as!(
        WindowRow,
        "SELECT f.id, e.name AS environment, f.cron, f.duration_minutes, f.starts_at, f.ends_at, f.timezone, f.reason
         FROM freeze_windows f JOIN environments e ON e.id = f.environment_id
         WHERE f.environment_id = $1",
        environment_id
    )
    .fetch_all(db)
    .await?;
    let windows: Vec<Window> = rows.iter().filter_map(WindowRow::window).collect();
    Ok(frozen_at(&windows, Utc::now()))
}

/// Holds the pending deployment `id` while its environment is frozen (or releases it when no
/// longer): the one place a deployment's hold is decided. Rollbacks and forced deployments are
/// never held.
pub(crate) async fn hold(
    tx: &mut sqlx::PgConnection,
    id: i64,
    environment_id: Uuid,
) -> sqlx::Result<Option<ActiveFreeze>> {
    let freeze = active(&mut *tx, environment_id).await?;
    match &freeze {
        Some(f) => {
            sqlx::query!(
                "UPDATE deployments SET held_until = $2, state_reason = $3
                 WHERE id = $1 AND state = 'pending' AND strategy <> 'rollback' AND forced_by IS NULL",
                id,
                f.until,
                format!(
                    "held by a freeze window until {}: {}",
                    f.until.format("%Y-%m-%d %H:%M:%S UTC"),
                    f.reason
                )
            )
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query!(
                "UPDATE deployments SET held_until = NULL, state_reason = NULL
                 WHERE id = $1 AND state = 'pending' AND held_until IS NOT NULL",
                id
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(freeze)
}

/// Decides the hold of every deployment waiting in the environment again (its windows changed),
/// and wakes the workers for those released.
async fn rehold(tx: &mut sqlx::PgConnection, environment_id: Uuid) -> sqlx::Result<()> {
    let waiting = sqlx::query_scalar!(
        "SELECT id FROM deployments WHERE environment_id = $1 AND state = 'pending'",
        environment_id
    )
    .fetch_all(&mut *tx)
    .await?;
    for id in waiting {
        hold(&mut *tx, id, environment_id).await?;
    }
    sqlx::query!("SELECT pg_notify('enclii_deployments', 'freeze')")
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A new window, as asked for: recurring (`cron`, `duration_minutes`) or one-off (`from`, `until`).
pub struct NewWindow<'a> {
    pub cron: Option<&'a str>,
    pub duration_minutes: Option<i64>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// IANA zone; a one-off range is absolute, the zone only says how to show it.
    pub timezone: &'a str,
    pub reason: &'a str,
}

/// Adds a freeze window to an environment (admin, audited); deployments waiting there are held
/// at once if it is in force.
pub async fn add(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    environment: &str,
    w: NewWindow<'_>,
) -> crate::Result<FreezeWindow> {
    let project = project_access(pool, caller, project, Action::ManageEnvironments).await?;
    let now = Utc::now();
    let reason = w.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::from(WindowError::NoReason).into());
    }
    if reason.len() > 500 {
        return Err(ApiError::invalid("a freeze's reason is at most 500 characters").into());
    }
    let when = match (w.cron, w.duration_minutes, w.from, w.until) {
        (Some(cron), Some(d), None, None) => recurring(cron, d, w.timezone, now),
        (None, None, Some(from), Some(until)) => {
            // Checked for the message only: the range itself is absolute.
            w.timezone
                .parse::<Tz>()
                .map_err(|_| ApiError::from(WindowError::UnknownZone(w.timezone.to_owned())))?;
            once(from, until, now)
        }
        _ => Err(WindowError::Shape),
    }
    .map_err(ApiError::from)?;
    let mut tx = pool.begin().await?;
    let environment_id = sqlx::query_scalar!(
        "SELECT id FROM environments WHERE project_id = $1 AND name = $2",
        project.id,
        environment
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "project `{}` has no environment `{environment}`",
            project.slug
        ))
    })?;
    let (cron, duration, from, until) = match &when {
        When::Recurring {
            duration_minutes, ..
        } => (w.cron, Some(*duration_minutes as i32), None, None),
        When::Once { from, until } => (None, None, Some(*from), Some(*until)),
    };
    let id = sqlx::query_scalar!(
        "INSERT INTO freeze_windows (environment_id, cron, duration_minutes, starts_at, ends_at, timezone, reason, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        environment_id,
        cron,
        duration,
        from,
        until,
        w.timezone,
        reason,
        caller.map(|c| c.user_id)
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("freeze.add")
            .target("freeze_window", id.to_string())
            .project(project.id)
            .details(serde_json::json!({
                "environment": environment, "cron": cron, "duration_minutes": duration,
                "from": from, "until": until, "timezone": w.timezone, "reason": reason,
            })),
    )
    .await?;
    rehold(&mut tx, environment_id).await?;
    tx.commit().await?;
    let row = WindowRow {
        id,
        environment: environment.to_owned(),
        cron: cron.map(str::to_owned),
        duration_minutes: duration,
        starts_at: from,
        ends_at: until,
        timezone: w.timezone.to_owned(),
        reason: reason.to_owned(),
    };
    Ok(row.wire())
}

/// Removes a freeze window (admin, audited); deployments it held proceed unless another holds them.
pub async fn remove(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    id: &str,
) -> crate::Result<()> {
    let project = project_access(pool, caller, project, Action::ManageEnvironments).await?;
    let not_found = || {
        ApiError::not_found(format!(
            "project `{}` has no freeze window {id}",
            project.slug
        ))
    };
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    let mut tx = pool.begin().await?;
    let removed = sqlx::query!(
        "DELETE FROM freeze_windows f USING environments e
         WHERE f.id = $1 AND e.id = f.environment_id AND e.project_id = $2
         RETURNING f.environment_id, e.name AS environment, f.reason",
        id,
        project.id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(not_found)?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("freeze.remove")
            .target("freeze_window", id.to_string())
            .project(project.id)
            .details(
                serde_json::json!({ "environment": removed.environment, "reason": removed.reason }),
            ),
    )
    .await?;
    rehold(&mut tx, removed.environment_id).await?;
    tx.commit().await?;
    Ok(())
}

/// Every freeze window of a project (for its environments' page).
pub(crate) async fn of_project(
    pool: &PgPool,
    project_id: Uuid,
) -> sqlx::Result<Vec<(FreezeWindow, Option<Window>)>> {
    Ok(rows(pool, project_id)
        .await?
        .into_iter()
        .map(|r| {
            let w = r.window();
            (r.wire(), w)
        })
        .collect())
}

/// Lets a deployment held by a freeze through (platform admins only, with a reason, audited).
pub async fn force(
    pool: &PgPool,
    caller: Option<&Caller>,
    project: &str,
    id: i64,
    reason: &str,
) -> crate::Result<DeploymentSummary> {
    let project = project_access(pool, caller, project, Action::Deploy).await?;
    let mut tx = pool.begin().await?;
    let row = sqlx::query!(
        r#"SELECT d.state, d.held_until FROM deployments d JOIN services s ON s.id = d.service_id
           WHERE d.id = $1 AND s.project_id = $2 FOR UPDATE OF d"#,
        id,
        project.id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "project `{}` has no deployment #{id}",
            project.slug
        ))
    })?;
    // After the project-scoped lookup: another project's id is "not found" to everyone.
    let Some(who) = caller.filter(|c| c.platform_admin) else {
        return Err(ApiError::forbidden(
            "only platform admins force a deployment through a freeze window",
        )
        .into());
    };
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApiError::invalid(
            "give a reason for forcing the deployment through the freeze: it goes into the audit log",
        )
        .into());
    }
    if row.state != "pending" || row.held_until.is_none_or(|t| t <= Utc::now()) {
        return Err(ApiError::conflict(format!(
            "deployment #{id} is not held by a freeze window ({}); there is nothing to force",
            row.state
        ))
        .into());
    }
    sqlx::query!(
        "UPDATE deployments SET held_until = NULL, forced_by = $2, force_reason = $3, state_reason = $4 WHERE id = $1",
        id,
        who.user_id,
        reason,
        format!(
            "forced through the freeze by {}: {reason}",
            who.display_name
        )
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        caller,
        audit::Event::new("deployment.force")
            .target("deployment", id.to_string())
            .project(project.id)
            .details(serde_json::json!({ "reason": reason, "held_until": row.held_until })),
    )
    .await?;
    sqlx::query!("SELECT pg_notify('enclii_deployments', $1)", id.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(super::deployments::get(pool, caller, &project.slug, id)
        .await?
        .deployment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn every(cron: &str, minutes: i64, tz: &str, reason: &str) -> Window {
        Window {
            when: recurring(cron, minutes, tz, utc("2026-01-01T00:00:00Z")).unwrap(),
            reason: reason.into(),
        }
    }

    fn between(from: &str, until: &str, reason: &str) -> Window {
        Window {
            when: When::Once {
                from: utc(from),
                until: utc(until),
            },
            reason: reason.into(),
        }
    }

    /// (windows, now, expected end of the freeze in force) over boundaries, overlaps and zones.
    #[test]
    fn the_freeze_in_force_over_boundaries_and_clock_changes() {
        let weekend = || every("0 16 * * 5", 64 * 60, "Europe/Berlin", "weekend");
        let nightly_0230 = || every("30 2 * * *", 60, "Europe/Berlin", "night");
        let cases: Vec<(&str, Vec<Window>, &str, Option<&str>)> = vec![
            ("no windows", vec![], "2026-12-04T15:00:00Z", None),
            // Friday 2026-12-04 16:00 CET is 15:00 UTC; Monday 08:00 CET is 07:00 UTC.
            (
                "a minute before it starts",
                vec![weekend()],
                "2026-12-04T14:59:00Z",
                None,
            ),
            (
                "at its first instant",
                vec![weekend()],
                "2026-12-04T15:00:00Z",
                Some("2026-12-07T07:00:00Z"),
            ),
            (
                "in the middle",
                vec![weekend()],
                "2026-12-06T12:00:00Z",
                Some("2026-12-07T07:00:00Z"),
            ),
            (
                "its last second",
                vec![weekend()],
                "2026-12-07T06:59:59Z",
                Some("2026-12-07T07:00:00Z"),
            ),
            (
                "at its end (exclusive)",
                vec![weekend()],
                "2026-12-07T07:00:00Z",
                None,
            ),
            (
                "on a Wednesday",
                vec![weekend()],
                "2026-12-09T12:00:00Z",
                None,
            ),
            // Clocks go forward on Sunday 2027-03-28: Friday 16:00 CET (15:00 UTC) to Monday
            // 08:00 CEST (06:00 UTC) is 63 hours, and the wall clock says 08:00.
            (
                "spring forward: still frozen",
                vec![weekend()],
                "2027-03-29T05:59:00Z",
                Some("2027-03-29T06:00:00Z"),
            ),
            (
                "spring forward: ended at 08:00 CEST",
                vec![weekend()],
                "2027-03-29T06:00:00Z",
                None,
            ),
            // Clocks go back on Sunday 2026-10-25: Friday 16:00 CEST (14:00 UTC) to Monday 08:00
            // CET (07:00 UTC) is 65 hours.
            (
                "fall back: started at 16:00 CEST",
                vec![weekend()],
                "2026-10-23T14:00:00Z",
                Some("2026-10-26T07:00:00Z"),
            ),
            (
                "fall back: still frozen at 07:59 CET",
                vec![weekend()],
                "2026-10-26T06:59:00Z",
                Some("2026-10-26T07:00:00Z"),
            ),
            (
                "fall back: not before 16:00 CEST",
                vec![weekend()],
                "2026-10-23T13:59:00Z",
                None,
            ),
            // 02:30 does not exist on 2027-03-28 in Berlin: the window starts when the clocks
            // reach 03:00 CEST (01:00 UTC) and ends at 03:30 CEST.
            (
                "a start in the spring gap: before",
                vec![nightly_0230()],
                "2027-03-28T00:59:00Z",
                None,
            ),
            (
                "a start in the spring gap: after the gap",
                vec![nightly_0230()],
                "2027-03-28T01:00:00Z",
                Some("2027-03-28T01:30:00Z"),
            ),
            // 02:30 happens twice on 2026-10-25: from the first (00:30 UTC) to 03:30 CET (02:30 UTC).
            (
                "a repeated start: the first one",
                vec![nightly_0230()],
                "2026-10-25T00:30:00Z",
                Some("2026-10-25T02:30:00Z"),
            ),
            (
                "a repeated start: between the two",
                vec![nightly_0230()],
                "2026-10-25T01:45:00Z",
                Some("2026-10-25T02:30:00Z"),
            ),
            (
                "a repeated start: not before",
                vec![nightly_0230()],
                "2026-10-25T00:29:00Z",
                None,
            ),
            (
                "an ordinary night",
                vec![nightly_0230()],
                "2026-12-10T01:40:00Z",
                Some("2026-12-10T02:30:00Z"),
            ),
            // Another zone: New York's 09:00 EST is 14:00 UTC.
            (
                "another zone",
                vec![every("0 9 * * 1-5", 30, "America/New_York", "standup")],
                "2026-12-10T14:10:00Z",
                Some("2026-12-10T14:30:00Z"),
            ),
            (
                "one-off: from is inclusive",
                vec![between(
                    "2026-12-24T00:00:00Z",
                    "2026-12-27T00:00:00Z",
                    "holidays",
                )],
                "2026-12-24T00:00:00Z",
                Some("2026-12-27T00:00:00Z"),
            ),
            (
                "one-off: until is exclusive",
                vec![between(
                    "2026-12-24T00:00:00Z",
                    "2026-12-27T00:00:00Z",
                    "holidays",
                )],
                "2026-12-27T00:00:00Z",
                None,
            ),
            // Adjacent and overlapping windows are one freeze.
            (
                "adjacent windows chain",
                vec![
                    between("2026-12-24T10:00:00Z", "2026-12-24T12:00:00Z", "a"),
                    between("2026-12-24T12:00:00Z", "2026-12-24T13:00:00Z", "b"),
                    between("2026-12-24T12:30:00Z", "2026-12-24T14:00:00Z", "c"),
                    between(
                        "2026-12-24T14:01:00Z",
                        "2026-12-24T15:00:00Z",
                        "not touching",
                    ),
                ],
                "2026-12-24T11:00:00Z",
                Some("2026-12-24T14:00:00Z"),
            ),
            (
                "a one-off inside a recurring one extends it",
                vec![
                    weekend(),
                    between(
                        "2026-12-06T00:00:00Z",
                        "2026-12-08T00:00:00Z",
                        "release week",
                    ),
                ],
                "2026-12-05T00:00:00Z",
                Some("2026-12-08T00:00:00Z"),
            ),
        ];
        for (name, windows, now, expected) in cases {
            let got = frozen_at(&windows, utc(now)).map(|f| f.until);
            assert_eq!(got, expected.map(utc), "{name}");
        }
    }

    #[test]
    fn the_reasons_are_those_of_the_windows_in_force_now() {
        let windows = vec![
            between("2026-12-24T00:00:00Z", "2026-12-27T00:00:00Z", "holidays"),
            between("2026-12-25T00:00:00Z", "2026-12-26T00:00:00Z", "holidays"),
            between("2026-12-25T06:00:00Z", "2026-12-25T07:00:00Z", "audit"),
            between("2026-12-27T00:00:00Z", "2026-12-28T00:00:00Z", "later"),
        ];
        let f = frozen_at(&windows, utc("2026-12-25T06:30:00Z")).unwrap();
        assert_eq!(f.reason, "holidays; audit");
        assert_eq!(f.until, utc("2026-12-28T00:00:00Z"));
    }

    #[test]
    fn windows_that_cannot_work_are_refused_with_the_reason() {
        let now = utc("2026-12-03T00:00:00Z");
        assert!(matches!(
            recurring("0 16 * * 5", 64 * 60, "Europe/Berlin", now),
            Ok(When::Recurring { .. })
        ));
        assert_eq!(
            recurring("0 * * * *", 90, "UTC", now),
            Err(WindowError::NeverEnds {
                duration: 90,
                gap: 60
            })
        );
        assert_eq!(
            recurring("0 16 * * 5", 60, "Mars/Olympus_Mons", now),
            Err(WindowError::UnknownZone("Mars/Olympus_Mons".into()))
        );
        assert!(matches!(
            recurring("61 * * * *", 60, "UTC", now),
            Err(WindowError::Cron(_))
        ));
        assert_eq!(
            recurring("0 0 30 2 *", 60, "UTC", now),
            Err(WindowError::NeverFires("0 0 30 2 *".into()))
        );
        assert_eq!(
            recurring("0 16 * * 5", 0, "UTC", now),
            Err(WindowError::Duration(0))
        );
        assert!(matches!(
            once(
                utc("2026-12-01T00:00:00Z"),
                utc("2026-12-02T00:00:00Z"),
                now
            ),
            Err(WindowError::Ended(_))
        ));
        assert!(matches!(
            once(
                utc("2026-12-05T00:00:00Z"),
                utc("2026-12-04T00:00:00Z"),
                now
            ),
            Err(WindowError::Ended(_))
        ));
        assert_eq!(duration_text(64 * 60), "64h");
        assert_eq!(duration_text(90), "1h30m");
        assert_eq!(duration_text(45), "45m");
    }
}
