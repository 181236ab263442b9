//! The closed sets of string values a config may use, with PgCat's spellings as aliases.
//! Matching is case-insensitive (PgCat accepts `"Primary"` as well as `"primary"`).

use crate::model::{
    AuthType, ClientTlsMode, DefaultRole, KeyType, LoadBalancingMode, LogFormat, PoolMode, Role,
    ServerTlsMode,
};

pub(crate) const AUTH_TYPE: &[(&str, AuthType)] = &[("trust", AuthType::Trust)];

pub(crate) const POOL_MODE: &[(&str, PoolMode)] = &[
    ("transaction", PoolMode::Transaction),
    ("session", PoolMode::Session),
    ("statement", PoolMode::Statement),
];

pub(crate) const LOAD_BALANCING: &[(&str, LoadBalancingMode)] = &[
    ("random", LoadBalancingMode::Random),
    ("round_robin", LoadBalancingMode::RoundRobin),
    ("loc", LoadBalancingMode::LeastOutstanding),
    // PgCat's long spelling.
    (
        "least_outstanding_connections",
        LoadBalancingMode::LeastOutstanding,
    ),
];

pub(crate) const DEFAULT_ROLE: &[(&str, DefaultRole)] = &[
    ("any", DefaultRole::Any),
    ("primary", DefaultRole::Primary),
    ("replica", DefaultRole::Replica),
];

pub(crate) const ROLE: &[(&str, Role)] = &[
    ("primary", Role::Primary),
    ("replica", Role::Replica),
    ("auto", Role::Auto),
];

pub(crate) const LOG_FORMAT: &[(&str, LogFormat)] =
    &[("text", LogFormat::Text), ("json", LogFormat::Json)];

pub(crate) const LOG_LEVEL: &[(&str, &str)] = &[
    ("error", "error"),
    ("warn", "warn"),
    ("info", "info"),
    ("debug", "debug"),
    ("trace", "trace"),
];

pub(crate) const KEY_TYPE: &[(&str, KeyType)] = &[
    ("bigint", KeyType::BigInt),
    ("integer", KeyType::Integer),
    ("smallint", KeyType::SmallInt),
    ("text", KeyType::Text),
    ("uuid", KeyType::Uuid),
    ("int8", KeyType::BigInt),
    ("int", KeyType::Integer),
    ("int4", KeyType::Integer),
    ("int2", KeyType::SmallInt),
    ("varchar", KeyType::Text),
];

/// PgBouncer's `client_tls_sslmode` values (underscores accepted too).
pub(crate) const CLIENT_TLS_MODE: &[(&str, ClientTlsMode)] = &[
    ("disable", ClientTlsMode::Disable),
    ("allow", ClientTlsMode::Allow),
    ("prefer", ClientTlsMode::Prefer),
    ("require", ClientTlsMode::Require),
    ("verify-ca", ClientTlsMode::VerifyCa),
    ("verify-full", ClientTlsMode::VerifyFull),
    ("verify_ca", ClientTlsMode::VerifyCa),
    ("verify_full", ClientTlsMode::VerifyFull),
];

/// libpq's `sslmode` values towards servers; PgDog's `tls_verify` spellings as aliases.
pub(crate) const SERVER_TLS_MODE: &[(&str, ServerTlsMode)] = &[
    ("disable", ServerTlsMode::Disable),
    ("allow", ServerTlsMode::Allow),
    ("prefer", ServerTlsMode::Prefer),
    ("require", ServerTlsMode::Require),
    ("verify-ca", ServerTlsMode::VerifyCa),
    ("verify-full", ServerTlsMode::VerifyFull),
    ("disabled", ServerTlsMode::Disable),
    ("verify_ca", ServerTlsMode::VerifyCa),
    ("verify_full", ServerTlsMode::VerifyFull),
];
