//! The ParameterStatus values a client has been told, kept as the pool's shared set plus
//! this client's differences.
//!
//! Every client of a pool is told the same dozen server parameters at login (server
//! version, encodings, DateStyle, TimeZone, …); only a few differ per client
//! (`application_name`, or a value a `SET` changed). A map per client cost about 2 KiB
//! of every idle client (issue 16); the shared set is one allocation per pool, and a
//! client owns only what is its own, as a list sized to fit: one or two entries are
//! found faster by a scan than by hashing, and a hash map's smallest table (four
//! buckets of two `String`s) was ~140 B of every idle client.

use crate::backend::pool::SharedParams;

#[derive(Debug, Default)]
pub struct Reported {
    base: Option<SharedParams>,
    /// Values that differ from `base` (or are missing from it): name, value.
    own: Vec<(Box<str>, Box<str>)>,
    /// The server parameter version (`ServerConn::params_version`) every value of which
    /// the client was told; 0 for none. A checkout of a connection at that version (any
    /// connection whose server reported the same values) skips comparing its dozen
    /// values (a lookup each, every transaction), and any change of what the client was
    /// told forgets it.
    synced: u64,
}

impl Reported {
    pub fn new(base: Option<SharedParams>) -> Self {
        Reported {
            base,
            own: Vec::new(),
            synced: 0,
        }
    }

    fn base_value(&self, name: &str) -> Option<&str> {
        let b = self.base.as_deref()?;
        let i = b.binary_search_by(|(k, _)| k.as_str().cmp(name)).ok()?;
        Some(b[i].1.as_str())
    }

    fn own_index(&self, name: &str) -> Option<usize> {
        self.own.iter().position(|(k, _)| &**k == name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        match self.own_index(name) {
            Some(i) => Some(&self.own[i].1),
            None => self.base_value(name),
        }
    }

    /// Records that the client was told `name = value`.
    pub fn set(&mut self, name: &str, value: &str) {
        if self.get(name) == Some(value) {
            return;
        }
        self.synced = 0;
        let at = self.own_index(name);
        if self.base_value(name) == Some(value) {
            if let Some(i) = at {
                self.own.swap_remove(i);
                if self.own.is_empty() {
                    self.own = Vec::new();
                }
            }
        } else if let Some(i) = at {
            self.own[i].1 = value.into();
        } else {
            self.own.reserve_exact(1);
            self.own.push((name.into(), value.into()));
        }
    }

    /// The client was told every value of server parameter version `gen`.
    pub fn mark_synced(&mut self, gen: u64) {
        self.synced = gen;
    }

    /// True when the client was told every value of version `gen` and nothing changed
    /// since.
    pub fn is_synced_with(&self, gen: u64) -> bool {
        gen != 0 && self.synced == gen
    }

    /// Nothing was reported yet (the login has not run).
    pub fn is_empty(&self) -> bool {
        self.own.is_empty() && self.base.as_ref().is_none_or(|b| b.is_empty())
    }

    /// Every reported value, the client's own first where they differ.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let base = self
            .base
            .iter()
            .flat_map(|b| b.iter())
            .filter(|(k, _)| self.own_index(k).is_none())
            .map(|(k, v)| (k.as_str(), v.as_str()));
        self.own.iter().map(|(k, v)| (&**k, &**v)).chain(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    fn base() -> SharedParams {
        SharedParams::from(vec![
            ("TimeZone".into(), "UTC".into()),
            ("application_name".into(), "".into()),
            ("client_encoding".into(), "UTF8".into()),
        ])
    }

    #[test]
    fn a_client_owns_only_its_differences() {
        let b = base();
        let mut r = Reported::new(Some(b.clone()));
        r.set("client_encoding", "UTF8");
        assert!(r.own.is_empty(), "equal to the shared value: nothing owned");
        r.set("application_name", "pgbench");
        r.set("application_name", "psql");
        assert_eq!(r.own.len(), 1, "a new value replaces the client's old one");
        assert_eq!(r.get("application_name"), Some("psql"));
        assert_eq!(r.get("TimeZone"), Some("UTC"));
        assert_eq!(r.get("missing"), None);
        r.set("application_name", "");
        assert!(r.own.is_empty(), "back to the shared value");
        r.set("in_hot_standby", "off");
        let mut all: Vec<_> = r.iter().collect();
        all.sort();
        assert_eq!(
            all,
            vec![
                ("TimeZone", "UTC"),
                ("application_name", ""),
                ("client_encoding", "UTF8"),
                ("in_hot_standby", "off")
            ]
        );
        assert_eq!(Arc::strong_count(&b), 2, "shared, not copied");
    }

    #[test]
    fn a_change_of_what_the_client_was_told_forgets_the_synced_version() {
        let mut r = Reported::new(Some(base()));
        assert!(!r.is_synced_with(0), "0 is no version");
        r.mark_synced(7);
        assert!(r.is_synced_with(7));
        assert!(!r.is_synced_with(8));
        r.set("TimeZone", "UTC");
        assert!(r.is_synced_with(7), "the same value again changes nothing");
        r.set("TimeZone", "Europe/Paris");
        assert!(!r.is_synced_with(7), "a new value: compare again");
    }

    #[test]
    fn empty_until_login() {
        assert!(Reported::new(None).is_empty());
        assert!(!Reported::new(Some(base())).is_empty());
    }
}
