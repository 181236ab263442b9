//! The closed sets of string values a config may use, with PgCat's spellings as aliases.
//! Matching is case-insensitive (PgCat accepts `"Primary"` as well as `"primary"`).

use crate::model::{AuthType, DefaultRole, KeyType, LoadBalancingMode, LogFormat, PoolMode, Role};

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
