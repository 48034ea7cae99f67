//! The storage layer on SQLite and PostgreSQL alike: migrations, transactions, constraints.

use bridge::{
    Error,
    db::{Database, is_unique_violation, now_millis, schema::users},
};
use diesel::prelude::*;
use integration_tests::{Backend, TestDatabase, test_settings};

fn database(db: &TestDatabase) -> Database {
    Database::new(&test_settings(db, &[]).database).expect("pool")
}

fn insert_user(conn: &mut bridge::db::AnyConnection, platform_id: &str) -> Result<i64, Error> {
    let now = now_millis();
    Ok(diesel::insert_into(users::table)
        .values((
            users::platform_user_id.eq(platform_id),
            users::username.eq(platform_id),
            users::username_lower.eq(platform_id.to_lowercase()),
            users::created_at.eq(now),
            users::updated_at.eq(now),
        ))
        .returning(users::id)
        .get_result(conn)?)
}

/// Runs one async test body against each backend, each with its own database.
macro_rules! on_both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                if let Some(db) = TestDatabase::new(Backend::Sqlite) {
                    $body(db).await;
                }
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(db) = TestDatabase::new(Backend::Postgres) {
                    $body(db).await;
                }
            }
        }
    };
}

async fn migrations_go_up_down_and_up(test_db: TestDatabase) {
    let db = database(&test_db);
    let applied = db.migrate().await.expect("up");
    assert!(applied >= 1);
    assert!(db.pending_migrations().await.expect("pending").is_empty());
    assert_eq!(db.migrate().await.expect("idempotent"), 0);
    let reverted = db.revert_all_migrations().await.expect("down");
    assert_eq!(reverted, applied);
    assert_eq!(
        db.pending_migrations().await.expect("pending").len(),
        applied
    );
    assert_eq!(db.migrate().await.expect("up again"), applied);
}
on_both_backends!(migrations, migrations_go_up_down_and_up);

async fn write_is_all_or_nothing(test_db: TestDatabase) {
    let db = database(&test_db);
    db.migrate().await.expect("migrate");
    let failed = db
        .write(|conn| {
            insert_user(conn, "u-rolled-back")?;
            Err::<(), _>(Error::Storage("abort on purpose".into()))
        })
        .await;
    assert!(failed.is_err());
    let committed = db
        .write(|conn| insert_user(conn, "u-kept"))
        .await
        .expect("commit");
    let names: Vec<String> = db
        .run(|conn| Ok(users::table.select(users::platform_user_id).load(conn)?))
        .await
        .expect("read");
    assert_eq!(names, vec!["u-kept".to_owned()]);
    assert!(committed > 0);
}
on_both_backends!(transactions, write_is_all_or_nothing);

async fn duplicates_are_recognised(test_db: TestDatabase) {
    let db = database(&test_db);
    db.migrate().await.expect("migrate");
    db.write(|conn| insert_user(conn, "dup"))
        .await
        .expect("first");
    let second = db.write(|conn| insert_user(conn, "dup")).await;
    match second {
        Err(Error::Database(e)) => assert!(is_unique_violation(&e), "{e}"),
        other => panic!("expected a unique violation, got {other:?}"),
    }
}
on_both_backends!(unique_constraints, duplicates_are_recognised);

async fn deleting_a_user_cascades(test_db: TestDatabase) {
    use bridge::db::schema::{actor_keys, audit_log};
    let db = database(&test_db);
    db.migrate().await.expect("migrate");
    db.write(|conn| {
        let id = insert_user(conn, "cascade")?;
        diesel::insert_into(actor_keys::table)
            .values((
                actor_keys::user_id.eq(id),
                actor_keys::public_key_pem.eq("pub"),
                actor_keys::private_key_pem.eq("priv"),
                actor_keys::created_at.eq(now_millis()),
            ))
            .execute(conn)?;
        diesel::insert_into(audit_log::table)
            .values((
                audit_log::user_id.eq(id),
                audit_log::action.eq("test"),
                audit_log::initiator.eq("test"),
                audit_log::created_at.eq(now_millis()),
            ))
            .execute(conn)?;
        diesel::delete(users::table.filter(users::id.eq(id))).execute(conn)?;
        Ok(())
    })
    .await
    .expect("write");
    let left: (i64, i64) = db
        .run(|conn| {
            Ok((
                actor_keys::table.count().get_result(conn)?,
                audit_log::table.count().get_result(conn)?,
            ))
        })
        .await
        .expect("count");
    // On SQLite this only holds with foreign keys switched on for every pooled connection.
    assert_eq!(left, (0, 0));
}
on_both_backends!(foreign_keys, deleting_a_user_cascades);

async fn concurrent_writers_all_succeed(test_db: TestDatabase) {
    let db = database(&test_db);
    db.migrate().await.expect("migrate");
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..8 {
        let db = db.clone();
        tasks.spawn(async move {
            for n in 0..25 {
                db.write(move |conn| {
                    // Read, then write: the pattern that fails under deferred SQLite
                    // transactions when another writer gets in between.
                    let _: i64 = users::table.count().get_result(conn)?;
                    insert_user(conn, &format!("w{writer}-{n}"))
                })
                .await
                .expect("write under contention");
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("writer task");
    }
    let count: i64 = db
        .run(|conn| Ok(users::table.count().get_result(conn)?))
        .await
        .expect("count");
    assert_eq!(count, 200);
}
on_both_backends!(concurrency, concurrent_writers_all_succeed);

/// A connection the server cut (a restart, an administrator, an idle timeout) fails at most
/// one call, with an error that asks for a retry, and is not handed out again: the pool
/// only tests connections idle for a while, so it must notice a lost one by its error.
#[tokio::test]
async fn a_connection_cut_by_the_server_is_replaced() {
    let Some(test_db) = TestDatabase::new(Backend::Postgres) else {
        return;
    };
    let db = Database::new(
        &test_settings(&test_db, &[("FEDIBRIDGE__DATABASE__POOL_SIZE", "1")]).database,
    )
    .expect("pool");
    db.migrate().await.expect("migrations");
    let name = test_db
        .postgres_name
        .clone()
        .expect("a PostgreSQL database");
    for round in 0..3 {
        db.ping().await.expect("the pool's one connection works");
        let mut admin = PgConnection::establish(&integration_tests::postgres_admin_url())
            .expect("admin connection");
        let cut: Vec<bool> = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )))
        .load(&mut admin)
        .expect("terminate");
        assert_eq!(
            cut,
            vec![true],
            "round {round}: the pool's connection was cut"
        );
        // The cut connection was used just now, so it is not tested before use: the first
        // call may fail (503-class), never more than that one.
        if let Err(error) = db.ping().await {
            assert!(error.is_transient(), "round {round}: {error}");
        }
        db.ping()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
}
