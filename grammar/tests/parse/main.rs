//! Integration tests of `segflow_grammar::parse`: one test binary, one module per
//! concern.

mod common;
mod errors;
mod examples;
mod fuzz;
mod round_trip;
mod spans;
