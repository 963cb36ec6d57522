//! The contract cases: `pub async fn <case>(store)`, one per obligation of the store ports.
//! Each gets a fresh, empty store and panics when the store breaks the obligation.
//!
//! Adding a case: write the function in one of these modules and add its name to
//! [`crate::for_each_case!`].

mod organizations;

pub use organizations::*;
