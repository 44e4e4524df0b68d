//! Deployment gates on the local cluster: approvals (a deployment waits, nothing is applied; the
//! requester cannot approve; another admin's approval sends it on; a rejection ends it) and freeze
//! windows (a held deployment proceeds when the window ends; rollbacks go through; a platform
//! admin forces one through with a reason, audited).

mod common;

use std::time::Duration;

use common::{Cleanup, LocalCluster, TestApp, User, cluster_settings, namespace, user};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::json;
use sqlx::PgPool;

const P: &str = "shop";

const SPEC: &str = "apiVersion: enclii.dev/v1
kind: Service
metadata:
  name: web
spec:
  build:
    type: dockerfile
  runtime:
    port: 8080
    healthCheck: /health
  rollout:
    strategy: rolling
";

struct Stack {
    app: TestApp,
    cluster: LocalCluster,
    _cleanup: Cleanup,
    owner: User,
}

async fn spawn(pool: &PgPool) -> Stack {
    let cluster = LocalCluster::from_env().await;
    let mut settings = cluster_settings(&cluster);
    settings.cluster.worker = true;
    let cleanup = Cleanup(settings.cluster.namespace_prefix.clone());
    let app = common::serve_app(
        switchyard_server::build_with_pool(settings, pool.clone())
            .await
            .expect("build app"),
    )
    .await;
    let owner = user(pool, "owner", true).await;
    let (status, body) = app
        .call(
            "/api/projects/create",
            Some(&owner.token),
            json!({"slug": P}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .call(
            "/api/services/import",
            Some(&owner.token),
            json!({"spec": SPEC, "project": P}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    Stack {
        app,
        cluster,
        _cleanup: cleanup,
        owner,
    }
}

async fn member(pool: &PgPool, name: &str, role: &str) -> User {
    let u = user(pool, name, true).await;
    sqlx::query(
        "INSERT INTO memberships (project_id, user_id, role) SELECT id, $1, $2 FROM projects WHERE slug = $3",
    )
    .bind(u.id)
    .bind(role)
    .bind(P)
    .execute(pool)
    .await
    .unwrap();
    u
}

async fn platform_admin(pool: &PgPool) -> User {
    use switchyard_engine::auth::{tokens, users};
    let id = users::upsert(
        pool,
        &users::Identity {
            issuer: "http://issuer.test",
            subject: "root",
            email: Some("root@example.test"),
            display_name: "root",
            platform_admin: true,
        },
    )
    .await
    .unwrap();
    let created = tokens::create(
        pool,
        id,
        "test",
        &[tokens::Scope::Read, tokens::Scope::Write],
        None,
    )
    .await
    .unwrap();
    User {
        id,
        token: created.token,
    }
}

async fn get(app: &TestApp, token: &str, id: i64) -> serde_json::Value {
    let (status, d) = app
        .call(
            "/api/deployments/get",
            Some(token),
            json!({"project": P, "id": id}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    d
}

/// Polls (in a test only) the deployment until it has ended: up to 90 s.
async fn ended(app: &TestApp, token: &str, id: i64) -> serde_json::Value {
    for _ in 0..450 {
        let d = get(app, token, id).await;
        if !matches!(
            d["deployment"]["state"].as_str(),
            Some("awaiting_approval" | "pending" | "in_progress")
        ) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("deployment {id} did not end within 90 s");
}

async fn request(app: &TestApp, token: &str, image: &str) -> serde_json::Value {
    let (status, d) = app
        .call(
            "/api/deployments/create",
            Some(token),
            json!({"project": P, "service": "web", "environment": "production", "image": image}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    d
}

async fn set_approvals(app: &TestApp, token: &str, n: i32, role: &str) {
    let (status, body) = app
        .call(
            "/api/environments/set",
            Some(token),
            json!({"project": P, "environment": "production", "approvals": n, "approver_role": role}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["required_approvals"], n);
}

/// The image production's Deployment runs (`None`: nothing applied there).
async fn running_image(stack: &Stack) -> Option<String> {
    let ns = namespace(&stack.app, P, "production");
    let api: Api<Deployment> = Api::namespaced(stack.cluster.admin.clone(), &ns);
    api.get_opt("web")
        .await
        .expect("read the Deployment")
        .and_then(|d| d.spec?.template.spec?.containers[0].image.clone())
}

async fn audited(app: &TestApp, token: &str, action: &str) -> Vec<serde_json::Value> {
    let (status, page) = app
        .call(
            "/api/audit/list",
            Some(token),
            json!({"project": P, "action": action}),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_deployment_waits_for_another_admins_approval_and_then_runs(pool: PgPool) {
    let stack = spawn(&pool).await;
    let app = &stack.app;
    let alice = member(&pool, "alice", "admin").await;
    let bob = member(&pool, "bob", "admin").await;
    let dev = member(&pool, "dev", "developer").await;
    set_approvals(app, &stack.owner.token, 1, "admin").await;

    let d = request(app, &alice.token, "registry.example/shop/web:1").await;
    assert_eq!(d["state"], "awaiting_approval", "{d}");
    let id = d["id"].as_i64().unwrap();
    // No worker takes it: nothing reaches the cluster while it waits.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = get(app, &alice.token, id).await;
    assert_eq!(waiting["deployment"]["state"], "awaiting_approval");
    assert_eq!(
        waiting["deployment"]["state_reason"],
        "awaiting approval: 0 of 1 from an admin or higher"
    );
    assert_eq!(running_image(&stack).await, None);

    // The requester cannot approve their own; a developer is below the approver role.
    let (status, body) = app
        .call(
            "/api/deployments/approve",
            Some(&alice.token),
            json!({"project": P, "id": id}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["message"],
        "you requested this deployment: another member must approve or reject it"
    );
    let (status, body) = app
        .call(
            "/api/deployments/approve",
            Some(&dev.token),
            json!({"project": P, "id": id}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("needs an admin"));

    let (status, body) = app
        .call(
            "/api/deployments/approve",
            Some(&bob.token),
            json!({"project": P, "id": id, "reason": "looks good"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let done = ended(app, &alice.token, id).await;
    assert_eq!(done["deployment"]["state"], "succeeded", "{done}");
    assert_eq!(done["approval"]["required"], 1);
    assert_eq!(done["approval"]["requested_by"], "alice");
    let decisions = done["approval"]["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0]["by"], "bob");
    assert_eq!(decisions[0]["approved"], true);
    assert_eq!(decisions[0]["reason"], "looks good");
    assert_eq!(
        running_image(&stack).await.as_deref(),
        Some("registry.example/shop/web:1")
    );
    // Decided once: a second word on an approved deployment is refused.
    let (status, body) = app
        .call(
            "/api/deployments/approve",
            Some(&bob.token),
            json!({"project": P, "id": id}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let approvals = audited(app, &stack.owner.token, "deployment.approve").await;
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    assert_eq!(approvals[0]["actor"], "bob");
    assert_eq!(approvals[0]["target"], format!("deployment:{id}"));

    // Rollbacks need no approval: they are the way out of an incident.
    let d = request(app, &alice.token, "registry.example/shop/web:2").await;
    let id = d["id"].as_i64().unwrap();
    let (status, body) = app
        .call(
            "/api/deployments/approve",
            Some(&bob.token),
            json!({"project": P, "id": id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ended(app, &alice.token, id).await["deployment"]["state"],
        "succeeded"
    );
    let (status, rollback) = app
        .call(
            "/api/deployments/rollback",
            Some(&alice.token),
            json!({"project": P, "service": "web", "environment": "production"}),
        )
        .await;
    assert_eq!(status, 200, "{rollback}");
    assert_eq!(rollback["state"], "pending", "{rollback}");
    let done = ended(app, &alice.token, rollback["id"].as_i64().unwrap()).await;
    assert_eq!(done["deployment"]["state"], "succeeded", "{done}");
    assert!(done["approval"].is_null(), "{done}");
    assert_eq!(
        running_image(&stack).await.as_deref(),
        Some("registry.example/shop/web:1")
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_rejection_ends_the_deployment_and_nothing_is_applied(pool: PgPool) {
    let stack = spawn(&pool).await;
    let app = &stack.app;
    let alice = member(&pool, "alice", "developer").await;
    let bob = member(&pool, "bob", "admin").await;
    set_approvals(app, &stack.owner.token, 2, "admin").await;

    let d = request(app, &alice.token, "registry.example/shop/web:1").await;
    assert_eq!(d["state"], "awaiting_approval", "{d}");
    let id = d["id"].as_i64().unwrap();
    let (status, body) = app
        .call(
            "/api/deployments/approve",
            Some(&stack.owner.token),
            json!({"project": P, "id": id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["state_reason"],
        "awaiting approval: 1 of 2 from an admin or higher"
    );
    let (status, body) = app
        .call(
            "/api/deployments/reject",
            Some(&bob.token),
            json!({"project": P, "id": id, "reason": "not during the sale"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "rejected");
    assert_eq!(body["state_reason"], "rejected by bob: not during the sale");
    assert!(body["finished_at"].is_string(), "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        get(app, &alice.token, id).await["deployment"]["state"],
        "rejected"
    );
    assert_eq!(running_image(&stack).await, None);
    let rejections = audited(app, &stack.owner.token, "deployment.reject").await;
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0]["details"]["reason"], "not during the sale");
}

async fn add_freeze(app: &TestApp, token: &str, body: serde_json::Value) -> serde_json::Value {
    let mut body = body;
    body["project"] = json!(P);
    body["environment"] = json!("production");
    let (status, w) = app.call("/api/freezes/add", Some(token), body).await;
    assert_eq!(status, 200, "{w}");
    w
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn a_deployment_held_by_a_freeze_proceeds_when_the_window_ends(pool: PgPool) {
    let stack = spawn(&pool).await;
    let app = &stack.app;
    let token = &stack.owner.token;
    let now = chrono::Utc::now();
    let until = now + chrono::Duration::seconds(5);
    add_freeze(
        app,
        token,
        json!({"from": (now - chrono::Duration::minutes(1)).to_rfc3339(), "until": until.to_rfc3339(),
               "timezone": "Europe/Berlin", "reason": "quarter close"}),
    )
    .await;
    let d = request(app, token, "registry.example/shop/web:1").await;
    assert_eq!(d["state"], "pending", "{d}");
    let reason = d["state_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("held by a freeze window until") && reason.ends_with(": quarter close"),
        "{reason}"
    );
    let id = d["id"].as_i64().unwrap();
    // The environments page shows the freeze and what it holds.
    let (_, environments) = app
        .call("/api/environments/list", Some(token), json!({"project": P}))
        .await;
    let production = environments
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "production")
        .unwrap();
    assert_eq!(production["active_freeze"]["reason"], "quarter close");
    assert_eq!(production["waiting"][0]["id"], id);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(get(app, token, id).await["deployment"]["state"], "pending");
    assert_eq!(running_image(&stack).await, None);

    let done = ended(app, token, id).await;
    assert_eq!(done["deployment"]["state"], "succeeded", "{done}");
    let started: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT started_at FROM deployments WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        started >= until,
        "started {started}, the freeze ended {until}"
    );
    assert!(
        started < until + chrono::Duration::seconds(10),
        "it proceeded by itself soon after: {started}"
    );
}

#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn during_a_freeze_rollbacks_go_through_and_a_platform_admin_forces_with_a_reason(
    pool: PgPool,
) {
    let stack = spawn(&pool).await;
    let app = &stack.app;
    let token = &stack.owner.token;
    for image in ["registry.example/shop/web:1", "registry.example/shop/web:2"] {
        let d = request(app, token, image).await;
        let done = ended(app, token, d["id"].as_i64().unwrap()).await;
        assert_eq!(done["deployment"]["state"], "succeeded", "{done}");
    }
    // Every Friday from 16:00 for a week (minus a minute): in force whenever the test runs.
    let w = add_freeze(
        app,
        token,
        json!({"cron": "0 16 * * 5", "duration_minutes": 7 * 24 * 60 - 1, "timezone": "Europe/Berlin", "reason": "change freeze"}),
    )
    .await;
    assert_eq!(
        w["description"],
        "every `0 16 * * 5` (Europe/Berlin) for 167h59m"
    );
    let now = chrono::Utc::now();
    let in_force = {
        let (_, environments) = app
            .call("/api/environments/list", Some(token), json!({"project": P}))
            .await;
        environments
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "production")
            .unwrap()["active_freeze"]
            .clone()
    };
    if in_force.is_null() {
        // The one minute a week the window leaves open (Friday 15:59 in Berlin).
        eprintln!("skipped at {now}: the freeze's one open minute");
        return;
    }

    // A deployment waits; only a platform admin lets it through, and only with a reason.
    let held = request(app, token, "registry.example/shop/web:3").await;
    assert_eq!(held["state"], "pending", "{held}");
    let id = held["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        running_image(&stack).await.as_deref(),
        Some("registry.example/shop/web:2")
    );
    let (status, body) = app
        .call(
            "/api/deployments/force",
            Some(token),
            json!({"project": P, "id": id, "reason": "hotfix"}),
        )
        .await;
    assert_eq!(
        status, 403,
        "the project's owner is not a platform admin: {body}"
    );
    let root = platform_admin(&pool).await;
    let (status, body) = app
        .call(
            "/api/deployments/force",
            Some(&root.token),
            json!({"project": P, "id": id, "reason": " "}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = app
        .call(
            "/api/deployments/force",
            Some(&root.token),
            json!({"project": P, "id": id, "reason": "security fix CVE-2026-1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let done = ended(app, token, id).await;
    assert_eq!(done["deployment"]["state"], "succeeded", "{done}");
    assert_eq!(done["forced"], "root: security fix CVE-2026-1");
    let forced = audited(app, token, "deployment.force").await;
    assert_eq!(forced.len(), 1);
    assert_eq!(forced[0]["actor"], "root");
    assert_eq!(forced[0]["details"]["reason"], "security fix CVE-2026-1");

    // A rollback is the way out of an incident: never held.
    let (status, rollback) = app
        .call(
            "/api/deployments/rollback",
            Some(token),
            json!({"project": P, "service": "web", "environment": "production"}),
        )
        .await;
    assert_eq!(status, 200, "{rollback}");
    assert_eq!(rollback["state"], "pending");
    assert!(rollback["state_reason"].is_null(), "{rollback}");
    let done = ended(app, token, rollback["id"].as_i64().unwrap()).await;
    assert_eq!(done["deployment"]["state"], "succeeded", "{done}");
    assert_eq!(
        running_image(&stack).await.as_deref(),
        Some("registry.example/shop/web:2")
    );

    // Removing the window releases what it held.
    let next = request(app, token, "registry.example/shop/web:4").await;
    assert_eq!(next["state"], "pending");
    assert!(!next["state_reason"].is_null(), "{next}");
    let (status, body) = app
        .call(
            "/api/freezes/remove",
            Some(token),
            json!({"project": P, "id": w["id"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let done = ended(app, token, next["id"].as_i64().unwrap()).await;
    assert_eq!(done["deployment"]["state"], "succeeded", "{done}");
}
