//! Who is calling and what they may do.
//!
//! Every server function starts by turning the request into an optional [`Caller`] (a session
//! cookie or a bearer token) and asking [`authorize`] whether that caller may perform an
//! [`Action`] on a project. The decision is a pure function of the caller, the action and the
//! caller's role on the project, tested over its whole table below.

pub mod jwt;
pub mod oidc;
pub mod rate;
pub mod sessions;
pub mod tokens;
pub mod users;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use enclii_api::{ApiError, Role};
use uuid::Uuid;

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Session,
    /// An Enclii API token, limited to its scopes.
    ApiToken {
        token_id: Uuid,
        write: bool,
    },
    PlintoToken,
}

impl Via {
    pub fn actor_kind(self) -> &'static str {
        match self {
            Via::ApiToken { .. } => "api_token",
            Via::Session | Via::PlintoToken => "user",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Via::Session => "session",
            Via::ApiToken { .. } => "api_token",
            Via::PlintoToken => "plinto_token",
        }
    }
}

/// An authenticated caller. Anonymous requests have no `Caller` at all.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub display_name: String,
    pub email: Option<String>,
    pub platform_admin: bool,
    pub via: Via,
    pub client_addr: Option<IpAddr>,
    /// The projects this caller's request has read (see `ProjectMemo`).
    pub projects: ProjectMemo,
}

/// What one request has already read about projects: slug → the project and the caller's role on
/// it (`None`: no such project). A page asks about one project in several calls (the service page
/// in eleven), and each read the same row again. A `Caller` lives for one request, so a changed
/// membership shows from the next request on. Authorization still runs, and refusals are still
/// audited, on every call: only the row is remembered. A page's calls run concurrently, so the
/// first one to ask reads the row and the others wait for its answer rather than each reading it.
#[derive(Debug, Clone, Default)]
pub struct ProjectMemo(Arc<Mutex<Vec<(String, Arc<ProjectCell>)>>>);

type ProjectCell = tokio::sync::OnceCell<Option<crate::platform::ProjectRef>>;

impl ProjectMemo {
    /// The project `slug` names, read by `read` at most once per request (a failed read is not
    /// remembered: the next call tries again).
    pub(crate) async fn get_or_read<F, Fut>(
        &self,
        slug: &str,
        read: F,
    ) -> crate::Result<Option<crate::platform::ProjectRef>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = crate::Result<Option<crate::platform::ProjectRef>>>,
    {
        let cell = {
            let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
            match seen.iter().find(|(s, _)| s == slug) {
                Some((_, cell)) => cell.clone(),
                None => {
                    let cell = Arc::new(ProjectCell::new());
                    seen.push((slug.to_owned(), cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_try_init(read).await.cloned()
    }
}

impl Caller {
    pub fn actor_id(&self) -> String {
        match self.via {
            Via::ApiToken { token_id, .. } => token_id.to_string(),
            _ => self.user_id.to_string(),
        }
    }
}

/// Everything a caller can ask for. Each action names the project role it needs; actions without a
/// project (listing one's projects, creating one) need only a signed-in caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    WhoAmI,
    ListProjects,
    CreateProject,
    ViewProject,
    ImportSpec,
    Deploy,
    ManageEnv,
    RevealSecret,
    ManageDomains,
    ManageMembers,
    /// Add environments to a project.
    ManageEnvironments,
    ViewAudit,
    DeleteProject,
    /// Create, list and revoke one's own API tokens.
    ManageOwnTokens,
    /// List the project's targets on the public status page, or stop listing them.
    PublishStatus,
    /// Add, remove and test notification destinations, and read their delivery logs.
    ManageNotifications,
}

impl Action {
    pub const ALL: [Action; 16] = [
        Action::WhoAmI,
        Action::ListProjects,
        Action::CreateProject,
        Action::ViewProject,
        Action::ImportSpec,
        Action::Deploy,
        Action::ManageEnv,
        Action::RevealSecret,
        Action::ManageDomains,
        Action::ManageMembers,
        Action::ManageEnvironments,
        Action::ViewAudit,
        Action::DeleteProject,
        Action::ManageOwnTokens,
        Action::PublishStatus,
        Action::ManageNotifications,
    ];

    /// The weakest project role allowed to do this; `None` when no project role is involved.
    pub fn required_role(self) -> Option<Role> {
        use Action::*;
        match self {
            WhoAmI | ListProjects | CreateProject | ManageOwnTokens => None,
            ViewProject => Some(Role::Viewer),
            ImportSpec | Deploy | ManageEnv => Some(Role::Developer),
            RevealSecret | ManageDomains | ManageMembers | ManageEnvironments | ViewAudit
            | PublishStatus | ManageNotifications => Some(Role::Admin),
            DeleteProject => Some(Role::Owner),
        }
    }

    /// Whether the action changes anything (read-only API tokens may not).
    pub fn mutates(self) -> bool {
        use Action::*;
        !matches!(self, WhoAmI | ListProjects | ViewProject | ViewAudit)
    }

    pub fn describe(self) -> &'static str {
        use Action::*;
        match self {
            WhoAmI => "see who you are",
            ListProjects => "list projects",
            CreateProject => "create a project",
            ViewProject => "view this project",
            ImportSpec => "import service specs",
            Deploy => "deploy",
            ManageEnv => "change environment variables",
            RevealSecret => "reveal secret values",
            ManageDomains => "manage domains",
            ManageMembers => "manage members",
            ManageEnvironments => "add environments",
            ViewAudit => "read the audit log",
            DeleteProject => "delete this project",
            ManageOwnTokens => "manage API tokens",
            PublishStatus => "publish this project on the status page",
            ManageNotifications => "manage notifications",
        }
    }
}

/// The decision. `role` is the caller's role on the project the action concerns, if any.
pub fn authorize(
    caller: Option<&Caller>,
    action: Action,
    role: Option<Role>,
) -> Result<(), ApiError> {
    let Some(caller) = caller else {
        return Err(ApiError::unauthenticated());
    };
    if let Via::ApiToken { write: false, .. } = caller.via {
        if action.mutates() {
            return Err(ApiError::forbidden(format!(
                "this API token is read-only; it cannot {}",
                action.describe()
            )));
        }
    }
    let Some(needed) = action.required_role() else {
        return Ok(());
    };
    if caller.platform_admin {
        return Ok(());
    }
    match role {
        Some(role) if role >= needed => Ok(()),
        Some(role) => Err(ApiError::forbidden(format!(
            "you are {} {role} of this project; to {} you need to be {} {needed}",
            article(role),
            action.describe(),
            article(needed)
        ))),
        // Not a member: say "not found" so that project names do not leak to outsiders.
        None => Err(ApiError::not_found(
            "no such project, or you are not a member of it",
        )),
    }
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Admin | Role::Owner => "an",
        Role::Viewer | Role::Developer => "a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page's server calls run at once: the first reads the project, the others wait for it;
    /// a failed read is not kept.
    #[tokio::test]
    async fn concurrent_calls_read_a_project_once_and_failures_are_not_remembered() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let memo = ProjectMemo::default();
        let reads = AtomicUsize::new(0);
        let read = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            // Let the other callers reach the memo while this read is in flight.
            tokio::task::yield_now().await;
            Ok(Some(crate::platform::ProjectRef {
                id: Uuid::nil(),
                slug: "shop".into(),
                role: Some(Role::Viewer),
            }))
        };
        let (a, b, c) = tokio::join!(
            memo.get_or_read("shop", read),
            memo.get_or_read("shop", read),
            memo.get_or_read("shop", read)
        );
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        for p in [a, b, c] {
            assert_eq!(p.unwrap().unwrap().role, Some(Role::Viewer));
        }

        let failing = || async { Err(crate::Error::Api(enclii_api::ApiError::internal())) };
        assert!(memo.get_or_read("other", failing).await.is_err());
        let none = memo
            .get_or_read("other", || async { Ok(None) })
            .await
            .unwrap();
        assert!(none.is_none(), "read again after the failure");
    }

    fn caller(via: Via, platform_admin: bool) -> Caller {
        Caller {
            user_id: Uuid::nil(),
            display_name: "t".into(),
            email: None,
            platform_admin,
            via,
            client_addr: None,
            projects: Default::default(),
        }
    }

    const ROLES: [Option<Role>; 5] = [
        None,
        Some(Role::Viewer),
        Some(Role::Developer),
        Some(Role::Admin),
        Some(Role::Owner),
    ];

    #[test]
    fn anonymous_callers_may_do_nothing() {
        for action in Action::ALL {
            for role in ROLES {
                assert!(matches!(
                    authorize(None, action, role),
                    Err(ApiError::Unauthenticated { .. })
                ));
            }
        }
    }

    #[test]
    fn members_may_do_exactly_what_their_role_allows() {
        let user = caller(Via::Session, false);
        for action in Action::ALL {
            for role in ROLES {
                let allowed = authorize(Some(&user), action, role).is_ok();
                let expected = match action.required_role() {
                    None => true,
                    Some(needed) => role.is_some_and(|r| r >= needed),
                };
                assert_eq!(allowed, expected, "{action:?} as {role:?}");
            }
        }
    }

    #[test]
    fn outsiders_are_told_not_found_and_members_are_told_what_they_lack() {
        let user = caller(Via::Session, false);
        assert!(matches!(
            authorize(Some(&user), Action::ViewProject, None),
            Err(ApiError::NotFound { .. })
        ));
        let err = authorize(Some(&user), Action::Deploy, Some(Role::Viewer)).unwrap_err();
        assert_eq!(
            err.message(),
            "you are a viewer of this project; to deploy you need to be a developer"
        );
    }

    #[test]
    fn platform_admins_may_do_everything_without_a_role() {
        let admin = caller(Via::Session, true);
        for action in Action::ALL {
            assert!(authorize(Some(&admin), action, None).is_ok(), "{action:?}");
        }
    }

    #[test]
    fn read_only_tokens_may_read_but_not_change() {
        let token = caller(
            Via::ApiToken {
                token_id: Uuid::nil(),
                write: false,
            },
            false,
        );
        for action in Action::ALL {
            let allowed = authorize(Some(&token), action, Some(Role::Owner)).is_ok();
            assert_eq!(allowed, !action.mutates(), "{action:?}");
        }
    }
}

/// The caller behind a request's headers: `Authorization`, else the session cookie.
pub async fn from_headers(
    engine: &crate::Engine,
    headers: &http::HeaderMap,
    client_addr: Option<IpAddr>,
) -> crate::Result<Option<Caller>> {
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let cookies = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let session = sessions::cookie_value(cookies, sessions::COOKIE);
    resolve(engine, authorization, session.as_deref(), client_addr).await
}

/// The caller of a request: the bearer token when there is one, else the session cookie. A
/// credential that is present but not valid is an error (never silently anonymous), so a client
/// learns its token is bad.
pub async fn resolve(
    engine: &crate::Engine,
    authorization: Option<&str>,
    session: Option<&str>,
    client_addr: Option<IpAddr>,
) -> crate::Result<Option<Caller>> {
    let caller = match (authorization, session) {
        (Some(value), _) => Some(from_bearer(engine, value).await?),
        (None, Some(secret)) => sessions::resolve(&engine.pool, secret).await?,
        (None, None) => None,
    };
    Ok(caller.map(|c| Caller { client_addr, ..c }))
}

async fn from_bearer(engine: &crate::Engine, value: &str) -> crate::Result<Caller> {
    let Some(token) = value.strip_prefix("Bearer ").map(str::trim) else {
        return Err(ApiError::Unauthenticated {
            message: "use `Authorization: Bearer <token>`".into(),
        }
        .into());
    };
    if token.starts_with(tokens::PREFIX) {
        return tokens::verify(&engine.pool, &engine.settings.session, token).await;
    }
    let Some(oidc) = &engine.oidc else {
        return Err(ApiError::Unauthenticated {
            message: "this server accepts Enclii API tokens (ency_…) only".into(),
        }
        .into());
    };
    let discovered = oidc.discovered().await.map_err(ApiError::from)?;
    let claims = discovered
        .jwt
        .verify(token)
        .await
        .map_err(|e| ApiError::Unauthenticated {
            message: e.to_string(),
        })?;
    let stored = users::find(&engine.pool, oidc.issuer(), &claims.sub).await?;
    // Plinto's access tokens need not say whether their email is verified; without that, the
    // address verified at this user's last browser sign-in (from the ID token) stands.
    let email = claims
        .verified_email()
        .map(str::to_owned)
        .or_else(|| stored.as_ref().and_then(|s| s.email.clone()));
    let display_name = claims
        .name
        .clone()
        .or_else(|| email.clone())
        .unwrap_or_else(|| claims.sub.clone());
    let platform_admin = oidc.is_platform_admin(email.as_deref(), &claims.roles);
    let identity = users::Identity {
        issuer: oidc.issuer(),
        subject: &claims.sub,
        email: email.as_deref(),
        display_name: &display_name,
        platform_admin,
    };
    let user_id = match stored {
        Some(s) if s.is_current(&identity) => s.id,
        _ => users::upsert(&engine.pool, &identity).await?,
    };
    Ok(Caller {
        user_id,
        display_name,
        email,
        platform_admin,
        via: Via::PlintoToken,
        client_addr: None,
        projects: Default::default(),
    })
}
