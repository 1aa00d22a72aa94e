//! Tests of the credential rules.
