//! Admin console commands and HTTP metrics/health.
//!
//! The router implements [`AdminView`] (snapshots of pools, clients, servers, … and the
//! actions PAUSE/RELOAD/…), then runs [`serve_admin`] on the admin port and
//! [`serve_http`] on the metrics port, and counts events on a shared [`Metrics`]. This
//! crate depends only on `wire` and `config`, never on the router.

mod auth;
pub mod command;
mod conn;
mod console;
mod error;
mod execute;
pub mod http;
pub mod metrics;
pub mod render;
pub mod reshard;
pub mod table;
pub mod view;

pub use auth::AdminCreds;
pub use command::{Command, Show};
pub use console::{serve_admin, session};
pub use error::AdminError;
pub use execute::execute;
pub use http::serve_http;
pub use metrics::{Metrics, QueryMetrics, GATEWAY_LOGIN_OUTCOMES};
pub use view::*;
