//! Frontend-protocol inputs for the protocol fuzzer: well-formed messages in random
//! orders, and the same bytes mutated (flipped bytes, cut tails, lying length fields).
//!
//! Pure generation from a seeded RNG, so a failing case is reproduced from its seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One message: tag, length, body.
pub fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn cstr(v: &mut Vec<u8>, s: &str) {
    v.extend_from_slice(s.as_bytes());
    v.push(0);
}

/// A message without a tag (startup, SSLRequest, CancelRequest).
fn untagged(body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

const SQL: &[&str] = &[
    "SELECT 1",
    "SELECT $1::int",
    "SELECT $1::text, $2::bytea",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT s",
    "SELECT pg_sleep(0.01)",
    "COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT",
    "CREATE TEMP TABLE IF NOT EXISTS fz (a int)",
    "COPY fz FROM STDIN",
    "SET search_path = public",
    "SET statement_timeout = 50",
    "PREPARE p AS SELECT 1",
    "EXECUTE p",
    "DEALLOCATE ALL",
    "DISCARD ALL",
    "LISTEN fz",
    "SELECT '",
    "",
    ";;;",
    "SELECT 1; SELECT 2",
    "SET orochi.shard = 7",
    "/* orochi.shard = 99 */ SELECT 1",
    "SELECT * FROM nowhere",
    "SELECT repeat('x', 100000)",
    "COMMIT PREPARED 'orochi_x'",
];

pub struct Gen {
    rng: StdRng,
}

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn name(&mut self) -> String {
        match self.rng.gen_range(0..4) {
            0 => String::new(),
            1 => "s1".into(),
            2 => format!("n{}", self.rng.gen_range(0..5)),
            _ => "x".repeat(self.rng.gen_range(0..300)),
        }
    }

    fn sql(&mut self) -> String {
        if self.rng.gen_bool(0.1) {
            let n = self.rng.gen_range(0..40);
            (0..n)
                .map(|_| self.rng.gen_range(b' '..=b'~') as char)
                .collect()
        } else {
            SQL[self.rng.gen_range(0..SQL.len())].to_string()
        }
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.rng.gen_range(0..=max);
        (0..n).map(|_| self.rng.gen()).collect()
    }

    /// A count field that may lie about what follows.
    fn count(&mut self) -> i16 {
        match self.rng.gen_range(0..6) {
            0 => -1,
            1 => i16::MAX,
            _ => self.rng.gen_range(0..4),
        }
    }

    /// One frontend message of the normal phase.
    fn message(&mut self) -> Vec<u8> {
        let mut b = Vec::new();
        match self.rng.gen_range(0..16) {
            0 | 1 => {
                cstr(&mut b, &self.sql());
                msg(b'Q', &b)
            }
            2 | 3 => {
                let (n, q) = (self.name(), self.sql());
                cstr(&mut b, &n);
                cstr(&mut b, &q);
                let k = self.count();
                b.extend_from_slice(&k.to_be_bytes());
                for _ in 0..k.clamp(0, 3) {
                    b.extend_from_slice(&self.rng.gen_range(0u32..30).to_be_bytes());
                }
                msg(b'P', &b)
            }
            4 | 5 => {
                let (p, s) = (self.name(), self.name());
                cstr(&mut b, &p);
                cstr(&mut b, &s);
                let f = self.count();
                b.extend_from_slice(&f.to_be_bytes());
                for _ in 0..f.clamp(0, 3) {
                    b.extend_from_slice(&self.rng.gen_range(-1i16..3).to_be_bytes());
                }
                let k = self.count();
                b.extend_from_slice(&k.to_be_bytes());
                for _ in 0..k.clamp(0, 3) {
                    let len: i32 = match self.rng.gen_range(0..5) {
                        0 => -1,
                        1 => -7,
                        2 => i32::MAX,
                        _ => self.rng.gen_range(0..8),
                    };
                    b.extend_from_slice(&len.to_be_bytes());
                    b.extend(self.bytes(len.clamp(0, 8) as usize));
                }
                let r = self.count();
                b.extend_from_slice(&r.to_be_bytes());
                for _ in 0..r.clamp(0, 3) {
                    b.extend_from_slice(&self.rng.gen_range(0i16..3).to_be_bytes());
                }
                msg(b'B', &b)
            }
            6 => {
                b.push([b'S', b'P', b'Z'][self.rng.gen_range(0..3)]);
                let n = self.name();
                cstr(&mut b, &n);
                msg(b'D', &b)
            }
            7 => {
                let n = self.name();
                cstr(&mut b, &n);
                b.extend_from_slice(&self.rng.gen_range(-1i32..3).to_be_bytes());
                msg(b'E', &b)
            }
            8 => {
                b.push([b'S', b'P', b'?'][self.rng.gen_range(0..3)]);
                let n = self.name();
                cstr(&mut b, &n);
                msg(b'C', &b)
            }
            9 | 10 => msg(b'S', &[]),
            11 => msg(b'H', &[]),
            12 => {
                let d = self.bytes(64);
                msg([b'd', b'c', b'f'][self.rng.gen_range(0..3)], &d)
            }
            13 => {
                let d = self.bytes(32);
                msg(b'F', &d)
            }
            14 => {
                let t = self.rng.gen();
                let d = self.bytes(16);
                msg(t, &d)
            }
            _ => {
                // A password message after login: never expected.
                cstr(&mut b, "secret");
                msg(b'p', &b)
            }
        }
    }

    /// Flips a byte, cuts the tail, or rewrites the length field of `m`.
    fn mutate(&mut self, mut m: Vec<u8>) -> Vec<u8> {
        if m.is_empty() {
            return m;
        }
        match self.rng.gen_range(0..3) {
            0 => {
                let i = self.rng.gen_range(0..m.len());
                m[i] ^= 1 << self.rng.gen_range(0..8);
            }
            1 => {
                let keep = self.rng.gen_range(0..m.len());
                m.truncate(keep);
            }
            _ if m.len() >= 5 => {
                let len: i32 = match self.rng.gen_range(0..4) {
                    0 => -1,
                    1 => 3,
                    2 => i32::MAX,
                    _ => self.rng.gen_range(4..64),
                };
                m[1..5].copy_from_slice(&len.to_be_bytes());
            }
            _ => {}
        }
        m
    }

    /// The bytes a logged-in client sends: 1-12 messages, some mutated (`true` when any
    /// was: the framing may then be broken, and the router may rightly wait for bytes
    /// that never come).
    pub fn session(&mut self) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut mutated = false;
        for _ in 0..self.rng.gen_range(1..=12) {
            let m = self.message();
            let m = if self.rng.gen_bool(0.15) {
                mutated = true;
                self.mutate(m)
            } else {
                m
            };
            out.extend(m);
        }
        (out, mutated)
    }

    /// The bytes of a client that has not logged in yet.
    pub fn pre_auth(&mut self, user: &str, db: &str) -> Vec<u8> {
        let startup = |g: &mut Gen, version: i32, params: &[(&str, String)]| {
            let mut b = version.to_be_bytes().to_vec();
            for (k, v) in params {
                cstr(&mut b, k);
                cstr(&mut b, v);
            }
            if g.rng.gen_bool(0.9) {
                b.push(0);
            }
            untagged(&b)
        };
        let v3 = 196608;
        let m = match self.rng.gen_range(0..10) {
            0 => self.bytes(64),
            1 => {
                let big = "y".repeat(self.rng.gen_range(0..20_000));
                startup(
                    self,
                    v3,
                    &[
                        ("user", user.into()),
                        ("database", db.into()),
                        ("application_name", big),
                    ],
                )
            }
            2 => startup(self, v3, &[("database", db.into())]),
            3 => startup(self, 131072, &[("user", user.into())]),
            4 => {
                let version = self.rng.gen();
                startup(self, version, &[("user", user.into())])
            }
            5 => {
                let mut v = untagged(&80877103i32.to_be_bytes());
                v.extend(self.bytes(48));
                v
            }
            6 => untagged(&80877104i32.to_be_bytes()),
            7 => {
                let mut b = 80877102i32.to_be_bytes().to_vec();
                b.extend_from_slice(&self.rng.gen::<i32>().to_be_bytes());
                b.extend_from_slice(&self.rng.gen::<i32>().to_be_bytes());
                untagged(&b)
            }
            8 => {
                // A declared length far larger than what follows.
                let mut v = (self.rng.gen_range(9..i32::MAX)).to_be_bytes().to_vec();
                v.extend(self.bytes(16));
                v
            }
            _ => {
                // Logs in as the password user, then answers the password request badly.
                let mut v = startup(self, v3, &[("user", "app".into()), ("database", db.into())]);
                let d = self.bytes(40);
                v.extend(msg(b'p', &d));
                v
            }
        };
        if self.rng.gen_bool(0.2) {
            self.mutate(m)
        } else {
            m
        }
    }

    pub fn coin(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }
}
