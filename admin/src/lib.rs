//! Admin console commands and HTTP metrics/health.
