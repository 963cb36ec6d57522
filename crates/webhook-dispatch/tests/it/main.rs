//! The dispatcher against real HTTP targets on loopback: outcomes, signatures, the SSRF guard,
//! concurrency limits, the work loop's claims, and sharing one PostgreSQL queue between
//! dispatchers.

mod delivery;
mod guard;
mod limits;
mod queue;
mod signature;
mod support;
mod work_loop;
