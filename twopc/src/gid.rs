//! Global transaction identifiers (SPEC §4).
//!
//! A transaction's *base* is `orochi_<instance id>_<sequence>_c<coordinator shard>`; it is
//! the key of its decision row. Each prepared participant uses `<base>_s<shard>`, so one
//! PostgreSQL cluster hosting several shards never sees the same gid twice (gids are
//! cluster-wide). The name alone tells the sweeper where the decision lives, so recovery
//! needs nothing from the router that started the transaction.
//!
//! Two rules keep names unique, which recovery depends on (a reused base could pick up
//! another transaction's decision): instance ids differ between live routers (random by
//! default), and the sequence starts at the wall clock in microseconds, so a restarted
//! router with a fixed instance id does not reuse the numbers of its previous life.
//!
//! The sequence part carries a random nonce, `<sequence>r<16 hex digits>`, so a client
//! cannot predict the gid of a transaction to come (and, say, pre-insert an `abort`
//! decision for it). Gids of the older shape (digits only) still parse, so transactions
//! prepared by an older router are recovered.
//!
//! Names are ASCII letters, digits and `_` only; the parser enforces it, which is what
//! makes it safe to put a gid found in `pg_prepared_xacts` into SQL.

use crate::error::TwoPcError;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Prefix of every gid and decision row this crate creates.
pub const PREFIX: &str = "orochi_";

/// The name of one two-phase transaction (without the participant suffix).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GidBase {
    instance: String,
    sequence: u64,
    /// Random part of the name (`None`: the older shape, or tests).
    nonce: Option<u64>,
    coordinator: usize,
}

impl GidBase {
    pub fn new(instance: &str, sequence: u64, coordinator: usize) -> Self {
        GidBase {
            instance: instance.to_string(),
            sequence,
            nonce: None,
            coordinator,
        }
    }

    /// The same name with a random part.
    pub fn with_nonce(mut self, nonce: u64) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// The shard that holds the decision row (the lowest-numbered written shard).
    pub fn coordinator(&self) -> usize {
        self.coordinator
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// `<base>_s<shard>`: the name passed to `PREPARE TRANSACTION` on that shard.
    pub fn participant(&self, shard: usize) -> String {
        format!("{self}_s{shard}")
    }
}

impl fmt::Display for GidBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}_{}", self.instance, self.sequence)?;
        if let Some(n) = self.nonce {
            write!(f, "r{n:016x}")?;
        }
        write!(f, "_c{}", self.coordinator)
    }
}

/// A participant gid found on a shard, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantGid {
    pub base: GidBase,
    /// The shard named by the `_s<k>` suffix.
    pub shard: usize,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Exactly 16 lowercase hex digits.
fn nonce(s: &str) -> Option<u64> {
    if s.len() != 16 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Parses `orochi_<instance>_<sequence>[r<nonce>]_c<coordinator>`. The instance id may itself
/// contain `_`, so the fixed-shape parts are taken from the right.
pub fn parse_base(s: &str) -> Result<GidBase, TwoPcError> {
    let bad = || TwoPcError::BadGid(s.to_string());
    if !s.chars().all(is_name_char) {
        return Err(bad());
    }
    let rest = s.strip_prefix(PREFIX).ok_or_else(bad)?;
    let (rest, coord) = rest.rsplit_once('_').ok_or_else(bad)?;
    let coordinator = coord.strip_prefix('c').and_then(number).ok_or_else(bad)?;
    let (instance, seq) = rest.rsplit_once('_').ok_or_else(bad)?;
    let (seq, nonce) = match seq.split_once('r') {
        Some((seq, hex)) => (seq, Some(nonce(hex).ok_or_else(bad)?)),
        None => (seq, None),
    };
    let sequence = number(seq).ok_or_else(bad)?;
    if instance.is_empty() {
        return Err(bad());
    }
    Ok(GidBase {
        instance: instance.to_string(),
        sequence,
        nonce,
        coordinator: usize::try_from(coordinator).map_err(|_| bad())?,
    })
}

/// Parses `<base>_s<shard>`.
pub fn parse_participant(s: &str) -> Result<ParticipantGid, TwoPcError> {
    let bad = || TwoPcError::BadGid(s.to_string());
    let (base, shard) = s.rsplit_once('_').ok_or_else(bad)?;
    let shard = shard.strip_prefix('s').and_then(number).ok_or_else(bad)?;
    Ok(ParticipantGid {
        base: parse_base(base).map_err(|_| bad())?,
        shard: usize::try_from(shard).map_err(|_| bad())?,
    })
}

/// Hands out bases for one router instance.
#[derive(Debug)]
pub struct GidGenerator {
    instance: String,
    next: AtomicU64,
    /// Whether names carry a random nonce (always, except in tests that need fixed names).
    random: bool,
}

impl GidGenerator {
    /// Sequence starts at the current Unix time in microseconds (see the module docs).
    /// Names carry a random nonce.
    pub fn new(instance: &str) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
            .unwrap_or(1);
        GidGenerator {
            random: true,
            ..Self::starting_at(instance, now)
        }
    }

    /// Fixed, predictable names without a nonce (tests).
    pub fn starting_at(instance: &str, sequence: u64) -> Self {
        GidGenerator {
            instance: instance.to_string(),
            next: AtomicU64::new(sequence),
            random: false,
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn next(&self, coordinator: usize) -> GidBase {
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        let base = GidBase::new(&self.instance, sequence, coordinator);
        if self.random {
            base.with_nonce(rand::random())
        } else {
            base
        }
    }
}

/// A random instance id (8 lowercase letters and digits) for routers without a configured
/// `instance_id`.
pub fn random_instance_id() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..8)
        .map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_and_participant_names() {
        let b = GidBase::new("r1", 42, 3);
        assert_eq!(b.to_string(), "orochi_r1_42_c3");
        assert_eq!(b.participant(5), "orochi_r1_42_c3_s5");
    }

    #[test]
    fn parse_round_trips_with_underscores_in_the_instance() {
        let b = GidBase::new("eu_west_1", 7, 0);
        let p = parse_participant(&b.participant(12)).unwrap();
        assert_eq!(p.base, b);
        assert_eq!(p.shard, 12);
        assert_eq!(parse_base(&b.to_string()).unwrap(), b);
        // An all-digit instance id still parses from the right.
        let n = GidBase::new("123", 9, 1);
        assert_eq!(parse_participant(&n.participant(2)).unwrap().base, n);
    }

    #[test]
    fn foreign_and_unsafe_names_are_rejected() {
        for s in [
            "orochi_",
            "orochi_r1_42_c3",    // a base is not a participant gid
            "orochi_r1_42_s3",    // no coordinator
            "orochi__42_c0_s1",   // empty instance
            "orochi_r1_x_c0_s1",  // sequence not a number
            "orochi_r1_1_c0_s",   // empty shard
            "orochi_r1_1_c0_s-1", // sign
            "orochi_r1_1_c0_s1'", // quote: never into SQL
            "orochi_r 1_1_c0_s1", // space
            "other_r1_1_c0_s1",   // not ours
            "orochi_r1_1_c99999999999999999999999_s1",
        ] {
            assert!(parse_participant(s).is_err(), "{s}");
        }
        assert!(parse_base("orochi_r1_42_c3_s1x").is_err());
        for s in [
            "orochi_r1_42r_c3_s1",                  // empty nonce
            "orochi_r1_42r00000000000000001_c3_s1", // 17 digits
            "orochi_r1_42r000000000000000G_c3_s1",  // not hex
            "orochi_r1_42r000000000000000A_c3_s1",  // upper case
            "orochi_r1_r0000000000000001_c3_s1",    // no sequence
        ] {
            assert!(parse_participant(s).is_err(), "{s}");
        }
    }

    #[test]
    fn generator_counts_up_from_its_start() {
        let g = GidGenerator::starting_at("i", 10);
        assert_eq!(g.next(0).to_string(), "orochi_i_10_c0");
        assert_eq!(g.next(2).to_string(), "orochi_i_11_c2");
        let g = GidGenerator::new("i");
        let (a, b) = (g.next(0), g.next(0));
        assert!(a.sequence() > 1_600_000_000_000_000, "{a}");
        assert_ne!(a.nonce, b.nonce, "random parts differ");
        let name = a.participant(1);
        assert!(
            name.len() == "orochi_i__c0_s1".len() + 16 + 1 + 16,
            "{name}"
        );
        assert_eq!(parse_participant(&name).unwrap().base, a);
        assert_eq!(
            parse_base("orochi_eu_1_7r00000000000000ff_c2").unwrap(),
            GidBase::new("eu_1", 7, 2).with_nonce(255)
        );
    }

    #[test]
    fn random_ids_are_valid_instance_ids() {
        let a = random_instance_id();
        assert_eq!(a.len(), 8);
        assert!(a.chars().all(is_name_char));
        assert_ne!(a, random_instance_id());
    }
}
