//! Tests of path classification and target resolution.
