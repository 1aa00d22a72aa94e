//! Runner tests live in the crate tests (they need the fakes).
