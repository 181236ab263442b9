//! Deterministic names: the same pool and shard maps give the same reshard id on any
//! machine, and every object is named from it, so a rerun finds what an earlier (maybe
//! killed) run created instead of creating a second copy.

/// Which way rows flow: forward (old → new, during copy and before cutover) or reverse
/// (new → old, armed at cutover so that `reverse` loses nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Reverse,
}

/// One publication → subscription pair. Indices are always (old shard, new shard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub old: usize,
    pub new: usize,
    pub dir: Direction,
    /// Carries the distributed tables' rows that hash to the destination.
    pub distributed: bool,
    /// Carries the replicated tables whole (from shard 0 of the source side).
    pub replicated: bool,
}

impl Link {
    /// `orochi_rs_<id>_<old>_<new>`, `_r` appended for the reverse direction. Used for
    /// the publication, the slot and the subscription alike.
    pub fn name(&self, id: &str) -> String {
        let r = if self.dir == Direction::Reverse {
            "_r"
        } else {
            ""
        };
        format!("orochi_rs_{id}_{}_{}{r}", self.old, self.new)
    }
    /// (source shard index, destination shard index) on their own sides.
    pub fn src(&self) -> usize {
        match self.dir {
            Direction::Forward => self.old,
            Direction::Reverse => self.new,
        }
    }
    pub fn dst(&self) -> usize {
        match self.dir {
            Direction::Forward => self.new,
            Direction::Reverse => self.old,
        }
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The links from `n` old shards to `m` new ones (or back). A key with hash h sits on old
/// shard h mod n and goes to new shard h mod m; both can hold only when
/// old ≡ new (mod gcd(n, m)) (Chinese remainder theorem), so other pairs carry no
/// distributed rows. When m is a multiple of n this is "new j reads only old j mod n".
/// Replicated tables come whole from shard 0 of the source side to every destination.
pub fn links(n: usize, m: usize, dir: Direction) -> Vec<Link> {
    let g = gcd(n, m).max(1);
    let mut out = Vec::new();
    for old in 0..n {
        for new in 0..m {
            let distributed = old % g == new % g;
            let replicated = match dir {
                Direction::Forward => old == 0,
                Direction::Reverse => new == 0,
            };
            if distributed || replicated {
                out.push(Link {
                    old,
                    new,
                    dir,
                    distributed,
                    replicated,
                });
            }
        }
    }
    out
}

/// The hash-partitioned parent (one per key type) whose regclass the row filters name.
pub fn hash_parent(id: &str, type_oid: u32) -> String {
    format!("orochi.rs_{id}_h{type_oid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_reads_one_old_shard_per_new_shard() {
        let l = links(2, 4, Direction::Forward);
        let dist: Vec<(usize, usize)> = l
            .iter()
            .filter(|l| l.distributed)
            .map(|l| (l.old, l.new))
            .collect();
        assert_eq!(dist, vec![(0, 0), (0, 2), (1, 1), (1, 3)]);
        // Replicated tables from old 0 to every new shard.
        assert_eq!(l.iter().filter(|l| l.replicated).count(), 4);
        assert_eq!(l.len(), 6);
        for j in 0..4 {
            assert!(l
                .iter()
                .any(|x| x.distributed && x.new == j && x.old == j % 2));
        }
    }

    #[test]
    fn coprime_counts_read_every_old_shard() {
        let l = links(2, 3, Direction::Forward);
        assert_eq!(l.len(), 6);
        assert!(l.iter().all(|l| l.distributed));
    }

    #[test]
    fn reverse_names_differ_and_replicated_come_from_new_zero() {
        let l = links(2, 4, Direction::Reverse);
        assert!(l.iter().filter(|l| l.replicated).all(|l| l.new == 0));
        assert_eq!(l[0].name("abcd1234"), "orochi_rs_abcd1234_0_0_r");
        assert_eq!(
            links(2, 4, Direction::Forward)[0].name("abcd1234"),
            "orochi_rs_abcd1234_0_0"
        );
    }
}
