//! A Postgres database of its own for one test, on the local server (`TOLLGATE_TEST_PG`, default trust auth
//! on 127.0.0.1:5432). Creating one fails, never skips, when Postgres is not there: CI guarantees one.

use sqlx::{Connection, PgConnection};

/// The URL of the server's maintenance database, from which test databases are made.
pub fn admin_url() -> String {
    std::env::var("TOLLGATE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own, dropped (with its connections) when the value goes.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub async fn create() -> Self {
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("Postgres at {admin} is required for these tests: {e}"));
        let name = format!("tg_test_{}", uuid::Uuid::now_v7().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        let (base, query) = admin.split_once('?').unwrap_or((admin.as_str(), ""));
        let (prefix, _) = base.rsplit_once('/').unwrap();
        let url = if query.is_empty() { format!("{prefix}/{name}") } else { format!("{prefix}/{name}?{query}") };
        Self { name, url }
    }

    /// Takes the database down (refuses new connections, ends the open ones) or brings it back.
    pub async fn set_up(&self, up: bool) {
        let mut conn = PgConnection::connect(&admin_url()).await.unwrap();
        let sql = format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {up}", self.name);
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
        if !up {
            sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                .bind(&self.name)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        conn.close().await.unwrap();
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context: a thread of its own with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}
