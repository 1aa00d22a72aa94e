//! The read queries on Postgres: metadata is `jsonb`, matched by containment and key existence, which the GIN
//! index answers.

use serde_json::{Map, Value};
use sqlx::{Postgres, QueryBuilder};

use crate::query::QueryBackend;

impl QueryBackend for Postgres {
    /// Containment (`@>`), tried with the value as a JSON string and, when it reads as a JSON number or boolean, as
    /// that too.
    fn push_metadata_equals(b: &mut QueryBuilder<Self>, key: &str, value: &str) {
        let mut as_string = Map::new();
        as_string.insert(key.to_owned(), Value::String(value.to_owned()));
        b.push(" AND (metadata @> CAST(").push_bind(Value::Object(as_string).to_string()).push(" AS jsonb)");
        if let Ok(scalar @ (Value::Number(_) | Value::Bool(_))) = serde_json::from_str::<Value>(value) {
            let mut as_scalar = Map::new();
            as_scalar.insert(key.to_owned(), scalar);
            b.push(" OR metadata @> CAST(").push_bind(Value::Object(as_scalar).to_string()).push(" AS jsonb)");
        }
        b.push(")");
    }

    fn push_has_key(b: &mut QueryBuilder<Self>, key: &str) {
        b.push(" AND metadata ? ").push_bind(key.to_owned());
    }
}
