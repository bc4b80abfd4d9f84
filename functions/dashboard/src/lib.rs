//! The dashboard function: HemoStat's live page, served as a Lambda
//! function URL (`lambda_http`, API Gateway v2 events), reading Redis and
//! publishing one thing: a person's answer to a pending approval.
//!
//! The page shows the container grid across hosts (CPU %, memory %, status,
//! health, host liveness, the silence and open circuit breaker holding
//! it), active issues, the live silences, the remediation history with
//! filters and details, and small CPU and memory charts; it polls a small
//! JSON API every 2 to 5 s. Every asset is compiled into the binary. Every
//! request is authenticated, by an `AWS_IAM` function URL or by the
//! dashboard's own token (`DASHBOARD_AUTH_TOKEN`).
//!
//! Module map:
//! - `handler`: routes, JSON answers and their headers (caching,
//!   content types, escaping), and the lambda_http adapter, which
//!   authenticates first.
//! - `auth`: who may see the page: the URL's IAM check or the token
//!   (bearer, or HTTP Basic for browsers); and that an answer to an
//!   approval comes from the page itself (CSRF).
//! - `answers`: answers to approvals: Slack's signed button presses and
//!   the page's buttons, read and checked before they are published.
//! - `views`: the API's answers built from raw Redis values by pure
//!   functions, one file per view (grid, silences, active issues, filtered
//!   history, series).
//! - `page`: the HTML page with its script and style inlined, its ETag
//!   and Content-Security-Policy.
//! - `store`: the few Redis reads the handler needs, as a trait, with the
//!   Redis and in-memory implementations.
//! - `config`: environment variables.
//! - `error`: the crate's error enum.

mod answers;
mod auth;
mod config;
mod error;
mod handler;
mod page;
mod store;
mod views;

pub use config::{Config, USAGE};
pub use error::DashboardError;
pub use handler::{Dashboard, HttpRequest};
pub use store::RedisStore;
// For hemostat-fuzz (fuzz/): the handler over Redis contents it chooses.
#[cfg(feature = "fuzzing")]
pub use store::MemoryStore;
