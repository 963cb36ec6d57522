//! Integration tests of the in-memory store: the store contract suite.

mod contract;
