//! One file per command: each turns its arguments into library calls and prints the result.

pub mod cache;
pub mod compare;
pub mod edit;
pub mod embed;
pub mod evaluate;
pub mod explain;
pub mod merge;
pub mod models;
