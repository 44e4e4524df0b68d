//! Project membership under concurrency: the last-owner guard holds when two owners demote or
//! remove each other at the same moment (issue #18, finding 12).

mod common;

use serde_json::json;
use sqlx::PgPool;

/// Two owners each take the other's ownership away at once, in every combination of demoting and
/// removing, many times over. Each request alone is allowed (the other owner remains), so without a
/// lock both could pass the guard and leave the project with no owner; with it, the second sees what
/// the first did and is refused.
#[sqlx::test(migrator = "switchyard_engine::db::MIGRATOR")]
async fn two_owners_taking_each_others_ownership_at_once_leave_an_owner(pool: PgPool) {
    let app = common::spawn_app(pool.clone()).await;
    let ada = common::user(&pool, "ada", true).await;
    let bob = common::user(&pool, "bob", true).await;
    let (status, body) = app
        .call(
            "/api/projects/create",
            Some(&ada.token),
            json!({"slug": "race"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let project: uuid::Uuid = sqlx::query_scalar("SELECT id FROM projects WHERE slug = 'race'")
        .fetch_one(&pool)
        .await
        .unwrap();

    let take_away = |token: String, victim: &'static str, remove: bool| {
        let app = &app;
        async move {
            let email = format!("{victim}@example.test");
            if remove {
                app.call(
                    "/api/members/remove",
                    Some(&token),
                    json!({"project": "race", "email": email}),
                )
                .await
            } else {
                app.call(
                    "/api/members/set",
                    Some(&token),
                    json!({"project": "race", "email": email, "role": "admin"}),
                )
                .await
            }
        }
    };

    for round in 0..60 {
        // Both owners again, whatever the last round left.
        for user in [ada.id, bob.id] {
            sqlx::query(
                "INSERT INTO memberships (project_id, user_id, role) VALUES ($1, $2, 'owner')
                 ON CONFLICT (project_id, user_id) DO UPDATE SET role = 'owner'",
            )
            .bind(project)
            .bind(user)
            .execute(&pool)
            .await
            .unwrap();
        }
        let (ada_removes, bob_removes) = (round % 2 == 1, round % 3 == 1);
        let (a, b) = tokio::join!(
            take_away(ada.token.clone(), "bob", ada_removes),
            take_away(bob.token.clone(), "ada", bob_removes),
        );
        for (status, body) in [&a, &b] {
            assert!(
                matches!(status, 200 | 403 | 404 | 409),
                "round {round}: {status} {body}"
            );
        }
        assert!(
            a.0 == 200 || b.0 == 200,
            "round {round}: one of them goes first and succeeds: {a:?} {b:?}"
        );
        let owners: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM memberships WHERE project_id = $1 AND role = 'owner'",
        )
        .bind(project)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(
            owners >= 1,
            "round {round}: the project was left without an owner ({a:?}, {b:?})"
        );
    }
}
