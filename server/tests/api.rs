//! The JSON API end to end: real server, real database, API tokens.

mod common;

use common::{spawn_app, user};
use serde_json::json;
use sqlx::PgPool;

const FIXTURES: [&str; 6] = [
    include_str!("../../spec/fixtures/dogfooding/switchyard-api.yaml"),
    include_str!("../../spec/fixtures/dogfooding/switchyard-ui.yaml"),
    include_str!("../../spec/fixtures/dogfooding/plinto.yaml"),
    include_str!("../../spec/fixtures/dogfooding/landing-page.yaml"),
    include_str!("../../spec/fixtures/dogfooding/docs-site.yaml"),
    include_str!("../../spec/fixtures/dogfooding/status-page.yaml"),
];

/// Who may call an endpoint.
#[derive(Clone, Copy, Debug)]
enum Needs {
    SignedIn,
    Role(&'static str),
    /// Like `Role`, for an endpoint that answers this status to allowed callers in this test.
    RoleThen(&'static str, u16),
    /// Like `Role`, for an endpoint that makes or removes one thing: the first allowed caller gets
    /// 200, the later ones this status (it is there already, or gone).
    RoleOnce(&'static str, u16),
    /// Only from a dashboard session: refused to every API token.
    Session,
    /// Anyone, signed in or not (the public status page).
    Public,
    /// Platform admins only: every project member is refused (none of the callers here is one).
    PlatformAdmin,
}

/// Every server function, with arguments that would succeed and what the caller needs. A server
/// function missing from this table fails the test below: a new endpoint cannot ship unchecked.
fn endpoint_table() -> Vec<(&'static str, serde_json::Value, Needs)> {
    let p = P;
    vec![
        ("/api/whoami", json!({}), Needs::SignedIn),
        ("/api/projects/list", json!({}), Needs::SignedIn),
        (
            "/api/projects/get",
            json!({"project": p}),
            Needs::Role("viewer"),
        ),
        ("/api/deployments/recent", json!({}), Needs::SignedIn),
        (
            "/api/projects/create",
            json!({"slug": "fresh"}),
            Needs::SignedIn,
        ),
        (
            "/api/services/import",
            json!({"spec": FIXTURES[4]}),
            Needs::Role("developer"),
        ),
        (
            "/api/services/list",
            json!({"project": p}),
            Needs::Role("viewer"),
        ),
        (
            "/api/services/revisions",
            json!({"project": p, "service": "docs-site"}),
            Needs::Role("viewer"),
        ),
        (
            "/api/deployments/create",
            json!({"project": p, "service": "docs-site", "environment": "production", "image": "ghcr.io/x/docs:1"}),
            Needs::Role("developer"),
        ),
        (
            "/api/deployments/list",
            json!({"project": p}),
            Needs::Role("viewer"),
        ),
        // The create row above made #1 (developer), #2 (admin) and #3 (owner), each superseding
        // the one before while pending.
        (
            "/api/deployments/get",
            json!({"project": p, "id": 3}),
            Needs::Role("viewer"),
        ),
        // No worker runs here, so #3 stays pending (a canary that has not started): promote and
        // abort are accepted, for its driver to act on.
        (
            "/api/deployments/promote",
            json!({"project": p, "id": 3}),
            Needs::Role("developer"),
        ),
        (
            "/api/deployments/abort",
            json!({"project": p, "id": 3}),
            Needs::Role("developer"),
        ),
        // Allowed, but there is nothing to roll back to yet: 422 once authorization has passed.
        (
            "/api/deployments/rollback",
            json!({"project": p, "service": "docs-site", "environment": "production"}),
            Needs::RoleThen("developer", 422),
        ),
        // Allowed, but docs-site never ran in staging: 409 once authorization has passed.
        (
            "/api/promotions/create",
            json!({"project": p, "service": "docs-site", "from": "staging", "to": "production"}),
            Needs::RoleThen("developer", 409),
        ),
        // Allowed, but #3 is pending, not awaiting approval: 409.
        (
            "/api/deployments/approve",
            json!({"project": p, "id": 3}),
            Needs::RoleThen("developer", 409),
        ),
        (
            "/api/deployments/reject",
            json!({"project": p, "id": 3, "reason": "not now"}),
            Needs::RoleThen("developer", 409),
        ),
        (
            "/api/deployments/force",
            json!({"project": p, "id": 3, "reason": "hotfix"}),
            Needs::PlatformAdmin,
        ),
        (
            "/api/environments/list",
            json!({"project": p}),
            Needs::Role("viewer"),
        ),
        (
            "/api/environments/set",
            json!({"project": p, "environment": "production", "approvals": 0, "approver_role": "admin"}),
            Needs::Role("admin"),
        ),
        // Far in the future, so that it holds none of the deployments the other rows make.
        (
            "/api/freezes/add",
            json!({"project": p, "environment": "production", "from": "2099-12-24T00:00:00Z", "until": "2099-12-27T00:00:00Z", "timezone": "Europe/Berlin", "reason": "holidays"}),
            Needs::Role("admin"),
        ),
        (
            "/api/freezes/remove",
            json!({"project": p, "id": "00000000-0000-0000-0000-000000000000"}),
            Needs::RoleThen("admin", 404),
        ),
        // Allowed, but this test server has no cluster: 503 once authorization has passed.
        (
            "/api/services/status",
            json!({"project": p, "service": "docs-site"}),
            Needs::RoleThen("viewer", 503),
        ),
        (
            "/api/env/set",
            json!({"project": p, "service": "docs-site", "environment": "production", "name": "API_KEY", "value": "s3cret", "secret": true}),
            Needs::Role("developer"),
        ),
        (
            "/api/env/list",
            json!({"project": p, "service": "docs-site", "environment": "production"}),
            Needs::Role("viewer"),
        ),
        (
            "/api/env/reveal",
            json!({"project": p, "service": "docs-site", "environment": "production", "name": "API_KEY"}),
            Needs::Role("admin"),
        ),
        (
            "/api/env/unset",
            json!({"project": p, "service": "docs-site", "environment": "production", "name": "GONE"}),
            Needs::RoleThen("developer", 404),
        ),
        (
            "/api/members/list",
            json!({"project": p}),
            Needs::Role("viewer"),
        ),
        (
            "/api/members/set",
            json!({"project": p, "email": "newcomer@example.test", "role": "viewer"}),
            Needs::Role("admin"),
        ),
        // The admin removes the newcomer; the owner is told they are not a member.
        (
            "/api/members/remove",
            json!({"project": p, "email": "newcomer@example.test"}),
            Needs::RoleOnce("admin", 404),
        ),
        // The admin adds `ops`; the owner is told it exists. A public literal address: no lookup.
        (
            "/api/notifications/add",
            json!({"project": p, "destination": {"name": "ops", "kind": "webhook", "url": "https://1.1.1.1/hook"}}),
            Needs::RoleOnce("admin", 409),
        ),
        (
            "/api/notifications/list",
            json!({"project": p}),
            Needs::Role("admin"),
        ),
        (
            "/api/notifications/test",
            json!({"project": p, "name": "ops"}),
            Needs::Role("admin"),
        ),
        (
            "/api/notifications/log",
            json!({"project": p, "name": "ops"}),
            Needs::Role("admin"),
        ),
        (
            "/api/notifications/remove",
            json!({"project": p, "name": "ops"}),
            Needs::RoleOnce("admin", 404),
        ),
        (
            "/api/audit/list",
            json!({"project": p}),
            Needs::Role("admin"),
        ),
        (
            "/api/tokens/create",
            json!({"name": "t", "write": false}),
            Needs::Session,
        ),
        ("/api/tokens/list", json!({}), Needs::Session),
        // The admin creates `preview`; the owner is told it exists.
        (
            "/api/environments/create",
            json!({"project": p, "name": "preview", "deploy_branch": "preview"}),
            Needs::RoleOnce("admin", 409),
        ),
        (
            "/api/releases/list",
            json!({"project": p, "service": "docs-site"}),
            Needs::Role("viewer"),
        ),
        // The admin adds the hostname; the owner is told it is taken.
        (
            "/api/domains/add",
            json!({"project": p, "service": "docs-site", "environment": "production", "hostname": "docs.example.com"}),
            Needs::RoleOnce("admin", 409),
        ),
        (
            "/api/domains/list",
            json!({"project": p}),
            Needs::Role("viewer"),
        ),
        // Allowed, then 404: the hostname was never added.
        (
            "/api/domains/verify",
            json!({"project": p, "hostname": "never.example.com"}),
            Needs::RoleThen("admin", 404),
        ),
        (
            "/api/domains/remove",
            json!({"project": p, "hostname": "never.example.com"}),
            Needs::RoleThen("admin", 404),
        ),
        // docs-site has a git source: a build is queued (no worker runs here).
        (
            "/api/builds/create",
            json!({"project": p, "service": "docs-site", "environment": "production"}),
            Needs::Role("developer"),
        ),
        (
            "/api/builds/list",
            json!({"project": p}),
            Needs::Role("viewer"),
        ),
        // Allowed, but there is no build #999: 404 once authorization has passed.
        (
            "/api/builds/cancel",
            json!({"project": p, "id": 999}),
            Needs::RoleThen("developer", 404),
        ),
        (
            "/api/deliveries/list",
            json!({"project": p}),
            Needs::Role("viewer"),
        ),
        // Allowed, but this server has no cluster to run it on: 503 once authorization passed.
        (
            "/api/runs/create",
            json!({"project": p, "service": "docs-site", "environment": "production", "command": ["./migrate", "status"]}),
            Needs::RoleThen("developer", 503),
        ),
        (
            "/api/runs/get",
            json!({"project": p, "id": 999}),
            Needs::RoleThen("viewer", 404),
        ),
        (
            "/api/jobs/list",
            json!({"project": p, "service": "docs-site"}),
            Needs::Role("viewer"),
        ),
        (
            "/api/previews/list",
            json!({"project": p}),
            Needs::Role("viewer"),
        ),
        // No pull request #999 has a preview here: 404 once authorization passed.
        (
            "/api/previews/wake",
            json!({"project": p, "pr": 999}),
            Needs::RoleThen("developer", 404),
        ),
        (
            "/api/previews/delete",
            json!({"project": p, "pr": 999}),
            Needs::RoleThen("developer", 404),
        ),
        (
            "/api/repositories/connect",
            json!({"project": p, "url": "https://github.com/madfam-io/enclii"}),
            Needs::Role("admin"),
        ),
        (
            "/api/repositories/list",
            json!({"project": p}),
            Needs::Role("viewer"),
        ),
        (
            "/api/tokens/revoke",
            json!({"id": "00000000-0000-0000-0000-000000000000"}),
            Needs::Session,
        ),
        // No Prometheus in this test: 200 with the charts empty and the reason given.
        (
            "/api/services/metrics",
            json!({"project": p, "service": "docs-site", "environment": "production"}),
            Needs::Role("viewer"),
        ),
        (
            "/api/services/validate",
            json!({"spec": FIXTURES[4]}),
            Needs::SignedIn,
        ),
        ("/api/status", json!({}), Needs::Public),
        ("/api/status/headline", json!({}), Needs::Public),
        (
            "/api/status/publish",
            json!({"project": p, "public": true}),
            Needs::Role("admin"),
        ),
    ]
}

const P: &str = "enclii-platform";

/// A new user `name` and the project `slug` they own, with docs-site imported.
async fn project_with_docs_site(
    app: &common::TestApp,
    pool: &PgPool,
    name: &str,
    slug: &str,
) -> common::User {
    let owner = user(pool, name, true).await;
    let (status, body) = app
        .call(
            "/api/projects/create",
            Some(&owner.token),
            json!({"slug": slug}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let spec = FIXTURES[4].replace("project: enclii-platform", &format!("project: {slug}"));
    let (status, body) = app
        .call(
            "/api/services/import",
            Some(&owner.token),
            json!({"spec": spec}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    owner
}

/// Who calls in the authorization tests, with their API token: anonymous, an outsider (signed
/// in, with a token that may write, a member of no project here), a member of project `p` in each
/// role, and its owner.
async fn callers(
    pool: &PgPool,
    p: &str,
    owner: &common::User,
) -> Vec<(&'static str, Option<String>)> {
    let outsider = user(pool, "outsider", true).await;
    let mut callers = vec![("anonymous", None), ("outsider", Some(outsider.token))];
    for role in ["viewer", "developer", "admin"] {
        let u = user(pool, role, true).await;
        sqlx::query(
            "INSERT INTO memberships (project_id, user_id, role) SELECT id, $1, $2 FROM projects WHERE slug = $3",
        )
        .bind(u.id)
        .bind(role)
        .bind(p)
        .execute(pool)
        .await
        .unwrap();
        callers.push((role, Some(u.token)));
    }
    callers.push(("owner", Some(owner.token.clone())));
    callers
}

/// The ranks of project roles, weakest first.
const ROLES: [&str; 4] = ["viewer", "developer", "admin", "owner"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn every_server_function_checks_its_caller_as_anonymous_outsider_viewer_developer_admin_and_owner(
    pool: PgPool,
) {
    let app = spawn_app(pool.clone()).await;
    let table = endpoint_table();
    let registered: Vec<String> = server_fn::axum::server_fn_paths()
        .map(|(path, _)| path.to_owned())
        .collect();
    for path in &registered {
        assert!(path.starts_with("/api/"), "{path} is outside /api/");
        assert!(
            table.iter().any(|(p, _, _)| p == path),
            "{path} is not in the authorization table: add it with the role it needs"
        );
    }
    assert_eq!(
        registered.len(),
        table.len(),
        "every table entry is a registered server function"
    );

    let owner = project_with_docs_site(&app, &pool, "owner", P).await;
    user(&pool, "newcomer", false).await;
    let callers = callers(&pool, P, &owner).await;
    for (path, body, needs) in &table {
        let mut made = false;
        for (who, token) in &callers {
            let (status, answer) = app.call(path, token.as_deref(), body.clone()).await;
            let expected: u16 = match (who, needs) {
                (_, Needs::Public) => 200,
                (&"anonymous", _) => 401,
                (_, Needs::SignedIn) => 200,
                (_, Needs::Session) => 403,
                // Not told whether the project exists.
                (&"outsider", _) => 404,
                (_, Needs::PlatformAdmin) => 403,
                (role, Needs::RoleOnce(needed, again)) => {
                    if rank(role) < rank(needed) {
                        403
                    } else if std::mem::replace(&mut made, true) {
                        *again
                    } else {
                        200
                    }
                }
                (role, Needs::Role(needed)) => {
                    if rank(role) >= rank(needed) {
                        200
                    } else {
                        403
                    }
                }
                (role, Needs::RoleThen(needed, allowed)) => {
                    if rank(role) >= rank(needed) {
                        *allowed
                    } else {
                        403
                    }
                }
            };
            // A per-user project name keeps `projects/create` from colliding across callers.
            let (status, answer) = if *path == "/api/projects/create" && status == 409 {
                app.call(
                    path,
                    token.as_deref(),
                    json!({"slug": format!("fresh-{who}")}),
                )
                .await
            } else {
                (status, answer)
            };
            assert_eq!(status, expected, "{path} as {who}: {answer}");
            if status == 401 {
                assert_eq!(answer["error"], "unauthenticated", "{path}");
            }
            if *who == "outsider" && status == 404 {
                assert_eq!(
                    answer["message"], "no such project, or you are not a member of it",
                    "{path}: an outsider learns nothing of the project"
                );
            }
        }
    }
}

/// `body` naming project `slug` instead.
fn in_project(body: &serde_json::Value, slug: &str) -> serde_json::Value {
    let mut body = body.clone();
    body["project"] = json!(slug);
    body
}

/// The newest deployment and build of project `slug`.
/// A finished one-off run from `deployment`'s release, as `runs/create` records one (these tests
/// have no cluster to start it on).
async fn one_off_run(pool: &PgPool, deployment: i64) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO job_runs (service_id, environment_id, deployment_id, command, job_name, state, exit_code)
         SELECT service_id, environment_id, id, '[\"./migrate\"]', 'docs-site-run-1', 'succeeded', 0
         FROM deployments WHERE id = $1 RETURNING id",
    )
    .bind(deployment)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn newest_deployment_and_build(pool: &PgPool, slug: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT max(d.id) FROM deployments d JOIN services s ON s.id = d.service_id
                  JOIN projects p ON p.id = s.project_id WHERE p.slug = $1),
                (SELECT max(b.id) FROM builds b JOIN services s ON s.id = b.service_id
                  JOIN projects p ON p.id = s.project_id WHERE p.slug = $1)",
    )
    .bind(slug)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// What of project `slug` an endpoint could change through an id: its deployments (and what was
/// asked of them), builds, domains, members and tokens.
async fn objects_of(pool: &PgPool, slug: &str) -> Vec<String> {
    sqlx::query_scalar(
        "WITH s AS (SELECT s.id FROM services s JOIN projects p ON p.id = s.project_id WHERE p.slug = $1)
         SELECT 'deployment ' || id || ' ' || state || ' ' || coalesce(requested_action, '-')
           FROM deployments WHERE service_id IN (SELECT id FROM s)
         UNION ALL SELECT 'build ' || id || ' ' || state FROM builds WHERE service_id IN (SELECT id FROM s)
         UNION ALL SELECT 'domain ' || hostname || ' ' || (verified_at IS NOT NULL)
           FROM domains WHERE service_id IN (SELECT id FROM s)
         UNION ALL SELECT 'freeze ' || f.id FROM freeze_windows f JOIN environments e ON e.id = f.environment_id
           JOIN projects p ON p.id = e.project_id WHERE p.slug = $1
         UNION ALL SELECT 'member ' || m.user_id || ' ' || m.role FROM memberships m
           JOIN projects p ON p.id = m.project_id WHERE p.slug = $1
         UNION ALL SELECT 'token ' || t.id || ' ' || (t.revoked_at IS NULL) FROM api_tokens t
           JOIN memberships m ON m.user_id = t.user_id JOIN projects p ON p.id = m.project_id
          WHERE p.slug = $1
         ORDER BY 1",
    )
    .bind(slug)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Ids (of a deployment, a build, a domain, a token) name one project's objects. The owner of
/// another project, naming their own project and an id of the first's, is told not found and
/// changes nothing, on every endpoint of the table that takes an id.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn no_endpoint_reaches_another_projects_object_by_its_id(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let a = project_with_docs_site(&app, &pool, "owner", P).await;
    let b = project_with_docs_site(&app, &pool, "stranger", "other").await;
    user(&pool, "newcomer", false).await;
    // Each owner calls every row for their own project: both have one of each object the table
    // makes (a deployment, a build, a domain, …), and the ids below are A's, not the only ones.
    let table = endpoint_table();
    for (path, body, _) in &table {
        app.call(path, Some(&a.token), body.clone()).await;
        app.call(path, Some(&b.token), in_project(body, "other"))
            .await;
    }
    let (deployment, build) = newest_deployment_and_build(&pool, P).await;
    let run = one_off_run(&pool, deployment).await;
    let freeze: uuid::Uuid = sqlx::query_scalar(
        "SELECT f.id FROM freeze_windows f JOIN environments e ON e.id = f.environment_id
         JOIN projects p ON p.id = e.project_id WHERE p.slug = $1 LIMIT 1",
    )
    .bind(P)
    .fetch_one(&pool)
    .await
    .unwrap();
    // A hostname only A claims (both claim the table's: a hostname may be pending in several
    // projects until one proves control of it).
    let hostname = "only-a.example.com";
    let (status, body) = app
        .call(
            "/api/domains/add",
            Some(&a.token),
            json!({"project": P, "service": "docs-site", "environment": "production", "hostname": hostname}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let before = objects_of(&pool, P).await;
    assert!(
        before.contains(&format!("domain {hostname} false")),
        "{before:#?}"
    );

    let mut checked = Vec::new();
    for (path, body, _) in &table {
        // A row that makes something names the new thing, not one of A's: B makes its own.
        if body.get("project").is_none() || path.ends_with("/add") || path.ends_with("/create") {
            continue;
        }
        let mut body = in_project(body, "other");
        let mut names_an_object = false;
        for (key, value) in body.as_object_mut().unwrap() {
            *value = match key.as_str() {
                "id" if path.starts_with("/api/deployments/") => json!(deployment),
                "id" if path.starts_with("/api/builds/") => json!(build),
                "id" if path.starts_with("/api/runs/") => json!(run),
                "id" if path.starts_with("/api/freezes/") => json!(freeze),
                "hostname" => json!(hostname),
                k if k == "id" || k.ends_with("_id") => {
                    panic!("{path}: which of project A's objects does `{k}` name? Add it here")
                }
                _ => continue,
            };
            names_an_object = true;
        }
        if !names_an_object {
            continue;
        }
        let (status, answer) = app.call(path, Some(&b.token), body).await;
        assert_eq!(status, 404, "{path} with project A's object: {answer}");
        checked.push(*path);
    }
    assert_eq!(
        checked,
        [
            "/api/deployments/get",
            "/api/deployments/promote",
            "/api/deployments/abort",
            "/api/deployments/approve",
            "/api/deployments/reject",
            "/api/deployments/force",
            "/api/freezes/remove",
            "/api/domains/verify",
            "/api/domains/remove",
            "/api/builds/cancel",
            "/api/runs/get",
        ]
    );

    // Tokens are revoked from a session: B's owner's cannot revoke A's owner's token.
    let a_token: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_tokens WHERE user_id = $1")
        .bind(a.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let session = switchyard_engine::auth::sessions::create(&pool, b.id, 1, None, None)
        .await
        .unwrap();
    let response = app
        .client
        .post(app.url("/api/tokens/revoke"))
        .header("cookie", format!("enclii_session={session}"))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"id": a_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "{}", response.text().await.unwrap());

    assert_eq!(objects_of(&pool, P).await, before, "project A is unchanged");
    let (status, _) = app.call("/api/whoami", Some(&a.token), json!({})).await;
    assert_eq!(status, 200, "A's owner's token still works");
}

/// Every streaming route (not a server function: the routes of `server/src/http/` that name a
/// `{project}`), the request that opens it on project `p` given a deployment and a build of it,
/// and what a caller allowed to view the project gets from this test server: 200, or 503 where
/// the stream reads the cluster it does not have (after the caller and the ids were checked).
fn stream_table(
    p: &str,
    deployment: i64,
    build: i64,
    run: i64,
) -> Vec<(&'static str, String, u16)> {
    vec![
        // The run is project P's; this server has no cluster to read its log from.
        (
            "/api/runs/{project}/{id}/logs",
            format!("/api/runs/{p}/{run}/logs?follow=true"),
            503,
        ),
        (
            "/api/logs/{project}/{service}/{environment}",
            format!("/api/logs/{p}/docs-site/production?follow=true"),
            503,
        ),
        (
            "/api/events/deployments/{project}/{id}",
            format!("/api/events/deployments/{p}/{deployment}"),
            200,
        ),
        (
            "/api/events/status/{project}/{service}",
            format!("/api/events/status/{p}/docs-site"),
            503,
        ),
        (
            "/api/builds/{project}/{id}/logs",
            format!("/api/builds/{p}/{build}/logs?follow=true"),
            503,
        ),
    ]
}

/// The routes under `server/src/http/` whose path names a `{project}`: the streams.
fn streaming_routes() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
    let mut routes = Vec::new();
    for file in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        for (at, call) in text.match_indices(".route(") {
            let rest = text[at + call.len()..].trim_start();
            if let Some(path) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                if path.contains("{project}") {
                    routes.push(path.to_owned());
                }
            }
        }
    }
    routes.sort();
    routes
}

/// The streams check their caller like the server functions do: anonymous callers are refused,
/// outsiders are told not found, every member may watch; the owner of another project naming an
/// id of this one (a deployment, a build) is told not found.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn every_streaming_route_checks_its_caller_and_refuses_another_projects_ids(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let owner = project_with_docs_site(&app, &pool, "owner", P).await;
    let stranger = project_with_docs_site(&app, &pool, "stranger", "other").await;
    for (who, slug) in [(&owner, P), (&stranger, "other")] {
        let at = json!({"project": slug, "service": "docs-site", "environment": "production"});
        let mut deploy = at.clone();
        deploy["image"] = json!("ghcr.io/x/docs:1");
        let (status, body) = app
            .call("/api/deployments/create", Some(&who.token), deploy)
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = app.call("/api/builds/create", Some(&who.token), at).await;
        assert_eq!(status, 200, "{body}");
    }
    let (deployment, build) = newest_deployment_and_build(&pool, P).await;
    let run = one_off_run(&pool, deployment).await;
    let table = stream_table(P, deployment, build, run);
    let mut listed: Vec<String> = table
        .iter()
        .map(|(route, _, _)| route.to_string())
        .collect();
    listed.sort();
    assert_eq!(
        streaming_routes(),
        listed,
        "every streaming route is in the stream table, with what an allowed caller gets"
    );

    let callers = callers(&pool, P, &owner).await;
    let open = |path: String, token: Option<String>| {
        let app = &app;
        async move {
            let mut request = app.client.get(app.url(&path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            // A stream that was let in is left at its first bytes: dropping it closes it.
            let text = if status == 200 {
                String::new()
            } else {
                response.text().await.unwrap()
            };
            (status, text)
        }
    };
    for (route, path, allowed) in &table {
        for (who, token) in &callers {
            let (status, answer) = open(path.clone(), token.clone()).await;
            let expected = match *who {
                "anonymous" => 401,
                "outsider" => 404,
                _ => *allowed,
            };
            assert_eq!(status, expected, "{route} as {who}: {answer}");
        }
    }
    // The owner of the other project, naming theirs and this one's ids.
    for (route, path, _) in stream_table("other", deployment, build, run) {
        if !route.contains("{id}") {
            continue;
        }
        let (status, answer) = open(path, Some(stranger.token.clone())).await;
        assert_eq!(status, 404, "{route} with project A's id: {answer}");
    }
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_bad_or_revoked_token_is_refused_not_treated_as_anonymous(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = user(&pool, "alice", true).await;
    let (status, body) = app.call("/api/whoami", Some(&alice.token), json!({})).await;
    assert_eq!(
        (status, body["display_name"].as_str()),
        (200, Some("alice")),
        "{body}"
    );
    assert_eq!(body["via"], "api_token");

    let (status, body) = app
        .call("/api/whoami", Some("ency_not-a-real-token"), json!({}))
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        body["message"],
        "this API token is unknown, expired or revoked"
    );

    let token_id = sqlx::query_scalar!("SELECT id FROM api_tokens WHERE user_id = $1", alice.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        switchyard_engine::auth::tokens::revoke(&pool, alice.id, token_id)
            .await
            .unwrap()
    );
    let (status, _) = app.call("/api/whoami", Some(&alice.token), json!({})).await;
    assert_eq!(status, 401);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn creating_a_project_gives_it_two_environments_and_an_owner(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = user(&pool, "alice", true).await;
    let (status, body) = app
        .call(
            "/api/projects/create",
            Some(&alice.token),
            json!({"slug": "shop"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "owner");
    let envs: Vec<&str> = body["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(envs, ["shop--production", "shop--staging"]);

    let (status, body) = app
        .call(
            "/api/projects/create",
            Some(&alice.token),
            json!({"slug": "shop"}),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")));
    let (status, body) = app
        .call(
            "/api/projects/create",
            Some(&alice.token),
            json!({"slug": "Not_A_Label"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("invalid")),
        "{body}"
    );

    // Others do not see it; the creation is in the audit log.
    let bob = user(&pool, "bob", true).await;
    let (_, list) = app
        .call("/api/projects/list", Some(&bob.token), json!({}))
        .await;
    assert_eq!(list, json!([]));
    let actions: Vec<String> = sqlx::query_scalar!("SELECT action FROM audit_events ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(actions, ["project.create"]);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn the_six_dogfooding_specs_import_and_reimport_changes_nothing(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = user(&pool, "alice", true).await;
    app.call(
        "/api/projects/create",
        Some(&alice.token),
        json!({"slug": "enclii-platform"}),
    )
    .await;
    for spec in FIXTURES {
        let (status, body) = app
            .call(
                "/api/services/import",
                Some(&alice.token),
                json!({"spec": spec}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (
                body["created"].as_bool(),
                body["changed"].as_bool(),
                body["revision"].as_i64()
            ),
            (Some(true), Some(true), Some(1))
        );
    }
    let (status, page) = app
        .call(
            "/api/services/list",
            Some(&alice.token),
            json!({"project": "enclii-platform"}),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "docs-site",
            "landing-page",
            "plinto",
            "status-page",
            "switchyard-api",
            "switchyard-ui"
        ]
    );

    let (_, again) = app
        .call(
            "/api/services/import",
            Some(&alice.token),
            json!({"spec": FIXTURES[0]}),
        )
        .await;
    assert_eq!(
        (again["changed"].as_bool(), again["revision"].as_i64()),
        (Some(false), Some(1)),
        "{again}"
    );

    let changed = FIXTURES[0].replace("replicas: 3", "replicas: 4");
    let (_, body) = app
        .call(
            "/api/services/import",
            Some(&alice.token),
            json!({"spec": changed}),
        )
        .await;
    assert_eq!(body["revision"], 2);
    let diff = body["diff"].as_str().unwrap();
    assert!(
        diff.contains("-    replicas: 3\n+    replicas: 4\n"),
        "{diff}"
    );

    let (_, revisions) = app
        .call(
            "/api/services/revisions",
            Some(&alice.token),
            json!({"project": "enclii-platform", "service": "switchyard-api"}),
        )
        .await;
    assert_eq!(revisions.as_array().unwrap().len(), 2);
    assert_eq!(revisions[0]["revision"], 2);
    assert_eq!(revisions[0]["created_by"], "alice");
    // The newest only, still with its diff to the one before.
    let (_, newest) = app
        .call(
            "/api/services/revisions",
            Some(&alice.token),
            json!({"project": "enclii-platform", "service": "switchyard-api", "limit": 1}),
        )
        .await;
    assert_eq!(newest.as_array().unwrap().len(), 1, "{newest}");
    assert_eq!(newest[0]["revision"], 2);
    assert_eq!(newest[0]["diff"], revisions[0]["diff"]);
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn an_invalid_spec_is_refused_with_every_located_error(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = user(&pool, "alice", true).await;
    app.call(
        "/api/projects/create",
        Some(&alice.token),
        json!({"slug": "enclii-platform"}),
    )
    .await;
    let bad = FIXTURES[0]
        .replace("replicas: 3", "replicsa: 3")
        .replace("port: 8080", "port: 0");
    let (status, body) = app
        .call(
            "/api/services/import",
            Some(&alice.token),
            json!({"spec": bad}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["message"], "the spec has 2 errors");
    let diagnostics = body["diagnostics"].as_array().unwrap();
    let errors: Vec<_> = diagnostics
        .iter()
        .filter(|d| d["severity"] == "error")
        .collect();
    assert_eq!(errors[0]["pos"], json!({"line": 25, "col": 11}));
    assert_eq!(errors[1]["pos"], json!({"line": 26, "col": 5}));
    let count: i64 = sqlx::query_scalar!("SELECT count(*) AS \"n!\" FROM services")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing is recorded from a refused spec");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn roles_decide_who_may_import_and_deploy(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let owner = user(&pool, "owner", true).await;
    let viewer = user(&pool, "viewer", true).await;
    let outsider = user(&pool, "outsider", true).await;
    let reader = user(&pool, "reader", false).await;
    app.call(
        "/api/projects/create",
        Some(&owner.token),
        json!({"slug": "enclii-platform"}),
    )
    .await;
    for (who, role) in [(&viewer, "viewer"), (&reader, "admin")] {
        sqlx::query!(
            "INSERT INTO memberships (project_id, user_id, role) SELECT id, $1, $2 FROM projects WHERE slug = 'enclii-platform'",
            who.id,
            role
        )
        .execute(&pool)
        .await
        .unwrap();
    }
    let import = json!({"spec": FIXTURES[4]});
    let (status, body) = app
        .call("/api/services/import", Some(&viewer.token), import.clone())
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["message"],
        "you are a viewer of this project; to import service specs you need to be a developer"
    );
    let (status, _) = app
        .call(
            "/api/services/import",
            Some(&outsider.token),
            import.clone(),
        )
        .await;
    assert_eq!(status, 404, "outsiders cannot tell the project exists");
    let (status, body) = app
        .call("/api/services/import", Some(&reader.token), import.clone())
        .await;
    assert_eq!(
        status, 403,
        "a read-only token cannot change anything: {body}"
    );
    let (status, _) = app
        .call("/api/services/import", Some(&owner.token), import)
        .await;
    assert_eq!(status, 200);

    let deploy =
        json!({"project": "enclii-platform", "service": "docs-site", "environment": "production"});
    let (status, _) = app
        .call(
            "/api/deployments/create",
            Some(&viewer.token),
            deploy.clone(),
        )
        .await;
    assert_eq!(status, 403);
    let denied: i64 = sqlx::query_scalar!(
        "SELECT count(*) AS \"n!\" FROM audit_events WHERE action = 'access.denied'"
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(denied, 4, "every refusal of a signed-in caller is audited");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn the_services_list_shows_each_services_newest_deployment_per_environment(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = user(&pool, "alice", true).await;
    app.call(
        "/api/projects/create",
        Some(&alice.token),
        json!({"slug": "enclii-platform"}),
    )
    .await;
    // docs-site is deployed (twice to production, once to staging); landing-page never is.
    for spec in [FIXTURES[4], FIXTURES[3]] {
        app.call(
            "/api/services/import",
            Some(&alice.token),
            json!({"spec": spec}),
        )
        .await;
    }
    let mut ids = Vec::new();
    for (environment, image) in [
        ("production", "ghcr.io/madfam-io/docs:1"),
        ("staging", "ghcr.io/madfam-io/docs:2"),
        ("production", "ghcr.io/madfam-io/docs:3"),
    ] {
        let (status, d) = app
            .call(
                "/api/deployments/create",
                Some(&alice.token),
                json!({"project": "enclii-platform", "service": "docs-site", "environment": environment, "image": image}),
            )
            .await;
        assert_eq!(status, 200, "{d}");
        ids.push(d["id"].as_i64().unwrap());
    }
    let (status, page) = app
        .call(
            "/api/services/list",
            Some(&alice.token),
            json!({"project": "enclii-platform"}),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["docs-site", "landing-page"]);
    // One entry per environment, by environment name, each the newest there.
    let latest: Vec<(&str, i64, &str)> = items[0]["latest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(
                (d["project"].as_str(), d["service"].as_str()),
                (Some("enclii-platform"), Some("docs-site"))
            );
            (
                d["environment"].as_str().unwrap(),
                d["id"].as_i64().unwrap(),
                d["image"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        latest,
        [
            ("production", ids[2], "ghcr.io/madfam-io/docs:3"),
            ("staging", ids[1], "ghcr.io/madfam-io/docs:2"),
        ]
    );
    assert_eq!(items[1]["latest"], json!([]), "never deployed");
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_deployment_records_a_release_and_supersedes_pending_ones(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = user(&pool, "alice", true).await;
    app.call(
        "/api/projects/create",
        Some(&alice.token),
        json!({"slug": "enclii-platform"}),
    )
    .await;
    app.call(
        "/api/services/import",
        Some(&alice.token),
        json!({"spec": FIXTURES[4]}),
    )
    .await;
    let deploy =
        json!({"project": "enclii-platform", "service": "docs-site", "environment": "production"});
    let (status, body) = app
        .call(
            "/api/deployments/create",
            Some(&alice.token),
            deploy.clone(),
        )
        .await;
    assert_eq!(status, 422, "no release yet: {body}");
    assert!(
        body["message"].as_str().unwrap().contains("--image"),
        "{body}"
    );

    let with_image = json!({"project": "enclii-platform", "service": "docs-site", "environment": "production", "image": "ghcr.io/madfam-io/docs:1"});
    let (status, first) = app
        .call("/api/deployments/create", Some(&alice.token), with_image)
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["state"].as_str(), first["strategy"].as_str()),
        (Some("pending"), Some("canary"))
    );
    let (_, second) = app
        .call("/api/deployments/create", Some(&alice.token), deploy)
        .await;
    assert_eq!(
        second["image"], "ghcr.io/madfam-io/docs:1",
        "the latest release is reused"
    );

    let (_, page) = app
        .call(
            "/api/deployments/list",
            Some(&alice.token),
            json!({"project": "enclii-platform"}),
        )
        .await;
    let states: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["pending", "superseded"]);

    let (status, body) = app
        .call(
            "/api/deployments/create",
            Some(&alice.token),
            json!({"project": "enclii-platform", "service": "docs-site", "environment": "qa"}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        body["message"],
        "project `enclii-platform` has no environment `qa`; it has: production, staging"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn admins_manage_members_but_only_owners_grant_admin_and_a_project_keeps_an_owner(
    pool: PgPool,
) {
    let app = spawn_app(pool.clone()).await;
    let owner = user(&pool, "owner", true).await;
    let admin = user(&pool, "admin", true).await;
    user(&pool, "dev", true).await;
    let p = "enclii-platform";
    app.call(
        "/api/projects/create",
        Some(&owner.token),
        json!({"slug": p}),
    )
    .await;
    let (status, _) = app
        .call(
            "/api/members/set",
            Some(&owner.token),
            json!({"project": p, "email": "admin@example.test", "role": "admin"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .call(
            "/api/members/set",
            Some(&admin.token),
            json!({"project": p, "email": "dev@example.test", "role": "developer"}),
        )
        .await;
    assert_eq!(status, 200, "admins add developers");
    let (status, body) = app
        .call(
            "/api/members/set",
            Some(&admin.token),
            json!({"project": p, "email": "dev@example.test", "role": "admin"}),
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            403,
            Some("only owners grant or change the admin and owner roles")
        )
    );
    let (status, body) = app
        .call(
            "/api/members/set",
            Some(&owner.token),
            json!({"project": p, "email": "nobody@example.test", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app
        .call(
            "/api/members/remove",
            Some(&owner.token),
            json!({"project": p, "email": "owner@example.test"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("conflict")),
        "the last owner stays"
    );
    let (_, members) = app
        .call(
            "/api/members/list",
            Some(&admin.token),
            json!({"project": p}),
        )
        .await;
    let roles: Vec<(&str, &str)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["display_name"].as_str().unwrap(),
                m["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [("admin", "admin"), ("dev", "developer"), ("owner", "owner")]
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn secrets_are_encrypted_at_rest_masked_in_lists_and_revealed_only_to_admins_with_an_audit(
    pool: PgPool,
) {
    let app = spawn_app(pool.clone()).await;
    let owner = user(&pool, "owner", true).await;
    let dev = user(&pool, "dev", true).await;
    app.call(
        "/api/projects/create",
        Some(&owner.token),
        json!({"slug": "enclii-platform"}),
    )
    .await;
    app.call(
        "/api/services/import",
        Some(&owner.token),
        json!({"spec": FIXTURES[4]}),
    )
    .await;
    app.call(
        "/api/members/set",
        Some(&owner.token),
        json!({"project": "enclii-platform", "email": "dev@example.test", "role": "developer"}),
    )
    .await;
    let at =
        json!({"project": "enclii-platform", "service": "docs-site", "environment": "production"});
    let with = |extra: serde_json::Value| {
        let mut body = at.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let (status, set) = app
        .call(
            "/api/env/set",
            Some(&dev.token),
            with(json!({"name": "DB_PASSWORD", "value": "hunter2", "secret": true})),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(
        (set["masked"].as_bool(), set["value"].is_null()),
        (Some(true), true)
    );
    app.call(
        "/api/env/set",
        Some(&dev.token),
        with(json!({"name": "LOG_LEVEL", "value": "info"})),
    )
    .await;
    app.call(
        "/api/env/set",
        Some(&dev.token),
        with(json!({"name": "DATABASE_URL", "secret_ref": ["enclii-secrets", "database-url"]})),
    )
    .await;

    let (_, list) = app
        .call("/api/env/list", Some(&dev.token), at.clone())
        .await;
    assert!(!list.to_string().contains("hunter2"), "{list}");
    let kinds: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("DATABASE_URL", "secret_ref"),
            ("DB_PASSWORD", "secret"),
            ("LOG_LEVEL", "plain")
        ]
    );

    let stored: Vec<u8> =
        sqlx::query_scalar!("SELECT ciphertext AS \"c!\" FROM env_vars WHERE name = 'DB_PASSWORD'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        !stored.windows(7).any(|w| w == b"hunter2"),
        "encrypted at rest"
    );

    let reveal = with(json!({"name": "DB_PASSWORD"}));
    assert_eq!(
        app.call("/api/env/reveal", Some(&dev.token), reveal.clone())
            .await
            .0,
        403,
        "developers cannot reveal"
    );
    let (status, value) = app
        .call("/api/env/reveal", Some(&owner.token), reveal)
        .await;
    assert_eq!((status, value.as_str()), (200, Some("hunter2")));
    let reveals: i64 = sqlx::query_scalar!(
        "SELECT count(*) AS \"n!\" FROM audit_events WHERE action = 'env.reveal'"
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(reveals, 1);
    let leaked: i64 = sqlx::query_scalar!(
        "SELECT count(*) AS \"n!\" FROM audit_events WHERE details::text LIKE '%hunter2%'"
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0, "no value in the audit log");

    let (status, _) = app
        .call(
            "/api/env/unset",
            Some(&dev.token),
            with(json!({"name": "LOG_LEVEL"})),
        )
        .await;
    assert_eq!(status, 200);
}

/// The overview's and the deployments page's list: one query over every project the caller may
/// view, newest first, in keyset pages; nobody sees another team's deployments.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn recent_deployments_span_the_callers_projects_only_and_page_by_cursor(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = user(&pool, "alice", true).await;
    let bob = user(&pool, "bob", true).await;
    for (who, slug) in [(&alice, "enclii-platform"), (&bob, "other")] {
        let (status, _) = app
            .call(
                "/api/projects/create",
                Some(&who.token),
                json!({"slug": slug}),
            )
            .await;
        assert_eq!(status, 200);
        let (status, body) = app
            .call(
                "/api/services/import",
                Some(&who.token),
                json!({"spec": FIXTURES[4].replace("project: enclii-platform", &format!("project: {slug}"))}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let deploy = |who: &common::User, project: &str, tag: u32| {
        let body = json!({"project": project, "service": "docs-site", "environment": "staging",
                          "image": format!("ghcr.io/x/docs:{tag}")});
        let token = who.token.clone();
        let app = &app;
        async move {
            let (status, body) = app
                .call("/api/deployments/create", Some(&token), body)
                .await;
            assert_eq!(status, 200, "{body}");
            body["id"].as_i64().unwrap()
        }
    };
    let mut alices = Vec::new();
    let mut bobs = Vec::new();
    for tag in 1..=3 {
        alices.push(deploy(&alice, "enclii-platform", tag).await);
        bobs.push(deploy(&bob, "other", tag).await);
    }
    let ids = |page: &serde_json::Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_i64().unwrap())
            .collect()
    };

    let (status, first) = app
        .call(
            "/api/deployments/recent",
            Some(&alice.token),
            json!({"limit": 2}),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(ids(&first), [alices[2], alices[1]]);
    assert!(
        first["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["project"] == "enclii-platform")
    );
    let cursor: i64 = first["next"].as_str().unwrap().parse().unwrap();
    let (_, second) = app
        .call(
            "/api/deployments/recent",
            Some(&alice.token),
            json!({"cursor": cursor, "limit": 2}),
        )
        .await;
    assert_eq!(ids(&second), [alices[0]]);
    assert_eq!(second["next"], serde_json::Value::Null);

    let (_, theirs) = app
        .call("/api/deployments/recent", Some(&bob.token), json!({}))
        .await;
    assert_eq!(ids(&theirs), [bobs[2], bobs[1], bobs[0]]);

    // A platform admin sees every project's, interleaved by age.
    sqlx::query!(
        "UPDATE users SET platform_admin = true WHERE id = $1",
        alice.id
    )
    .execute(&pool)
    .await
    .unwrap();
    let (_, all) = app
        .call("/api/deployments/recent", Some(&alice.token), json!({}))
        .await;
    let mut expected: Vec<i64> = alices.iter().chain(&bobs).copied().collect();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids(&all), expected);
}

/// The project page shows fifty services and links to the next fifty (the list is read in keyset
/// pages on the server); the link keeps working from the second page back to the first.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn the_project_page_pages_its_services_on_the_server(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = user(&pool, "alice", true).await;
    app.call(
        "/api/projects/create",
        Some(&alice.token),
        json!({"slug": "enclii-platform"}),
    )
    .await;
    for i in 0..51 {
        let spec = FIXTURES[4].replace("name: docs-site", &format!("name: svc-{i:02}"));
        let (status, body) = app
            .call(
                "/api/services/import",
                Some(&alice.token),
                json!({"spec": spec}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let page = |path: String| {
        let token = alice.token.clone();
        let app = &app;
        async move {
            let response = app
                .client
                .get(app.url(&path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.text().await.unwrap()
        }
    };
    let first = page("/projects/enclii-platform".into()).await;
    assert!(
        first.contains(">svc-00</a>") && first.contains(">svc-49</a>"),
        "{first}"
    );
    assert!(
        !first.contains(">svc-50</a>"),
        "the 51st service is on the next page"
    );
    assert!(
        first.contains(">production</p>"),
        "the environments are listed"
    );
    let next = first
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to the next page")
        .replace("&amp;", "&");
    // The cursor is the last name shown (percent-encoded by the router).
    assert!(next.starts_with("?cursor=svc"), "{next}");
    let second = page(format!("/projects/enclii-platform{next}")).await;
    assert!(
        second.contains(">svc-50</a>") && !second.contains(">svc-49</a>"),
        "{second}"
    );
    assert!(!second.contains("rel=\"next\""), "no page after the last");
    assert!(
        second.contains("← First page"),
        "a way back to the first page"
    );
}

/// A caller remembers the projects it has read for one request (a page asks about its project in
/// several calls): a membership removed meanwhile shows from the next request on.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_project_is_read_once_per_request_and_afresh_by_the_next(pool: PgPool) {
    use switchyard_engine::auth::{Action, resolve};
    use switchyard_engine::platform::project_access;
    let app = spawn_app(pool.clone()).await;
    let alice = user(&pool, "alice", true).await;
    let (status, _) = app
        .call(
            "/api/projects/create",
            Some(&alice.token),
            json!({"slug": "enclii-platform"}),
        )
        .await;
    assert_eq!(status, 200);
    let bearer = format!("Bearer {}", alice.token);
    let caller = resolve(&app.engine, Some(&bearer), None, None)
        .await
        .unwrap()
        .expect("a caller");
    let first = project_access(&pool, Some(&caller), "enclii-platform", Action::ViewProject)
        .await
        .unwrap();
    sqlx::query("DELETE FROM memberships")
        .execute(&pool)
        .await
        .unwrap();
    let again = project_access(&pool, Some(&caller), "enclii-platform", Action::ViewProject)
        .await
        .unwrap();
    assert_eq!((again.id, again.role), (first.id, first.role), "remembered");
    let (status, body) = app
        .call(
            "/api/services/list",
            Some(&alice.token),
            json!({"project": "enclii-platform"}),
        )
        .await;
    assert_eq!(
        status, 404,
        "the next request reads the membership again: {body}"
    );
}

/// A token's last use is recorded with the lookup itself, at most once a minute.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_tokens_last_use_is_recorded_to_the_minute(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let alice = user(&pool, "alice", false).await;
    let last_used = || async {
        sqlx::query_scalar::<_, Option<String>>("SELECT last_used_at::text FROM api_tokens")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(last_used().await, None);
    let (status, _) = app.call("/api/whoami", Some(&alice.token), json!({})).await;
    assert_eq!(status, 200);
    let first = last_used().await.expect("recorded on first use");
    app.call("/api/whoami", Some(&alice.token), json!({})).await;
    assert_eq!(
        last_used().await,
        Some(first),
        "not rewritten within the minute"
    );
    sqlx::query("UPDATE api_tokens SET last_used_at = now() - interval '2 minutes'")
        .execute(&pool)
        .await
        .unwrap();
    app.call("/api/whoami", Some(&alice.token), json!({})).await;
    let recent: bool =
        sqlx::query_scalar("SELECT last_used_at > now() - interval '1 minute' FROM api_tokens")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(recent, "touched again once the minute has passed");
}
