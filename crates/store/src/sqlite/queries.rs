//! The read queries on SQLite: metadata is JSON text, matched through `json_each` over the row's object.

use sqlx::{QueryBuilder, Sqlite};

use crate::query::QueryBackend;

impl QueryBackend for Sqlite {
    /// The scalar rendered as text (`json_each` gives booleans as 1/0, so its `type` restores `true`/`false`).
    fn push_metadata_equals(b: &mut QueryBuilder<Self>, key: &str, value: &str) {
        b.push(" AND EXISTS (SELECT 1 FROM json_each(request_logs.metadata) AS m WHERE m.key = ");
        b.push_bind(key.to_owned());
        b.push(
            " AND (CASE m.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(m.value AS TEXT) END) = ",
        );
        b.push_bind(value.to_owned());
        b.push(")");
    }

    fn push_has_key(b: &mut QueryBuilder<Self>, key: &str) {
        b.push(" AND EXISTS (SELECT 1 FROM json_each(request_logs.metadata) AS m WHERE m.key = ");
        b.push_bind(key.to_owned()).push(")");
    }
}
