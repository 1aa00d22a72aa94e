//! Tests of body splicing.
