//! Proof against a real PostgreSQL that our shard of a key is the partition PostgreSQL picks.
//!
//! For every supported key type, thousands of seeded random values (plus extremes, NULL, empty
//! and long strings, non-ASCII text, every accepted uuid spelling) are COPYed into the server in
//! text form. We compare, value by value: the column's extended hash function under
//! `HASH_PARTITION_SEED` with [`column_hash`], and for moduli 2, 3, 4, 7 and 32 the remainder for
//! which `satisfies_hash_partition(parent, modulus, remainder, value)` is true with
//! [`shard_for`]. The server parses the same text we parse, so our input functions are checked
//! too; a second test compares accept/reject and the parsed value on mangled inputs.
//!
//! The server comes from `testing/hash-proof.sh` (started on demand, reused afterwards). If it
//! cannot start, the tests fail: they never skip. Set `OROCHI_PROOF_SEED` to replay a failure.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use orochi_config::KeyType;
use orochi_sharding::{
    column_hash, format_uuid, parse_binary, parse_text, shard_for, ShardKey, HASH_PARTITION_SEED,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const VALUES_PER_TYPE: usize = 10_000;
const MODULI: [usize; 5] = [2, 3, 4, 7, 32];

/// How to reach the proof server: psql over its unix socket as the superuser.
struct Pg {
    port: String,
    socket_dir: String,
}

/// Starts (or reuses) the proof server. The one place that knows how PostgreSQL is started.
fn start_postgres() -> Pg {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script: PathBuf = root.join("testing/hash-proof.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "PostgreSQL could not be started by {}:\n{}{}",
        script.display(),
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut words = stdout.split_whitespace();
    match (words.next(), words.next()) {
        (Some(port), Some(dir)) => Pg {
            port: port.to_string(),
            socket_dir: dir.to_string(),
        },
        _ => panic!("unexpected output from {}: {stdout:?}", script.display()),
    }
}

impl Pg {
    /// Runs one SQL command (feeding `input` to COPY FROM STDIN) and returns unaligned rows.
    fn psql(&self, sql: &str, input: &[u8]) -> Vec<Vec<String>> {
        let mut child = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-F",
                "\x1f",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .env("PGHOST", &self.socket_dir)
            .env("PGPORT", &self.port)
            .env("PGUSER", "postgres")
            .env("PGDATABASE", "postgres")
            .env("PGCLIENTENCODING", "UTF8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql must be installed");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let data = input.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().expect("psql runs");
        writer
            .join()
            .expect("stdin writer")
            .expect("psql read its input");
        assert!(
            out.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("UTF-8 output")
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| line.split('\x1f').map(str::to_string).collect())
            .collect()
    }
}

/// A schema of our own, dropped at the end (also when a check fails), so runs can overlap.
struct Scratch<'a> {
    pg: &'a Pg,
    schema: String,
}

impl<'a> Scratch<'a> {
    fn new(pg: &'a Pg, label: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let schema = format!("hash_proof_{label}_{}_{nanos}", std::process::id());
        pg.psql(&format!("CREATE SCHEMA {schema}"), b"");
        Scratch { pg, schema }
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        self.pg.psql(
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
            b"",
        );
    }
}

fn seed() -> u64 {
    match std::env::var("OROCHI_PROOF_SEED") {
        Ok(text) => text.parse().expect("OROCHI_PROOF_SEED must be a u64"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

/// COPY text-format escaping of one field.
fn copy_field(value: &Option<String>) -> String {
    match value {
        None => "\\N".to_string(),
        Some(text) => {
            let mut out = String::with_capacity(text.len());
            for c in text.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
            out
        }
    }
}

fn copy_rows(values: &[Option<String>]) -> Vec<u8> {
    let mut data = String::new();
    for (id, value) in values.iter().enumerate() {
        data.push_str(&format!("{id}\t{}\n", copy_field(value)));
    }
    data.into_bytes()
}

/// Spaces, signs and leading zeros PostgreSQL's integer input accepts around a value.
fn decorate_int(rng: &mut StdRng, v: i64) -> String {
    let spaces = [" ", "  ", "\t", "\n", " \r\n"];
    let mut out = String::new();
    if rng.gen_bool(0.15) {
        out.push_str(spaces[rng.gen_range(0..spaces.len())]);
    }
    if v < 0 {
        out.push('-');
    } else if rng.gen_bool(0.15) {
        out.push('+');
    }
    if rng.gen_bool(0.1) {
        out.push_str(&"0".repeat(rng.gen_range(1..4)));
    }
    out.push_str(&v.unsigned_abs().to_string());
    if rng.gen_bool(0.15) {
        out.push_str(spaces[rng.gen_range(0..spaces.len())]);
    }
    out
}

fn random_int(rng: &mut StdRng, min: i64, max: i64) -> i64 {
    match rng.gen_range(0..4) {
        0 => rng.gen_range(min..=max),
        1 => rng.gen_range(-1000i64..=1000).clamp(min, max),
        2 => {
            // Around powers of two, where the 32-bit folding of int8 hashes changes.
            let bits = rng.gen_range(0..63u32);
            let base = 1i64 << bits;
            let v = base.saturating_add(rng.gen_range(-2..=2));
            let v = if rng.gen_bool(0.5) { v } else { -v };
            v.clamp(min, max)
        }
        _ => {
            let bits = rng.gen_range(1..64u32);
            let v = (rng.gen::<u64>() >> (64 - bits)) as i64;
            v.clamp(min, max)
        }
    }
}

fn int_values(rng: &mut StdRng, min: i64, max: i64) -> Vec<Option<String>> {
    let mut fixed: Vec<i64> = vec![
        0,
        1,
        -1,
        2,
        -2,
        min,
        max,
        min + 1,
        max - 1,
        255,
        256,
        -256,
        32767,
        -32768,
        65535,
        i64::from(i32::MAX),
        i64::from(i32::MIN),
        1 << 31,
        -(1 << 31) - 1,
        1 << 32,
        -(1 << 32),
        (1 << 32) - 1,
        i64::MAX,
        i64::MIN,
    ];
    fixed.retain(|v| (min..=max).contains(v));
    let mut values: Vec<Option<String>> = vec![None, None];
    values.extend(fixed.into_iter().map(|v| Some(v.to_string())));
    while values.len() < VALUES_PER_TYPE {
        let v = random_int(rng, min, max);
        values.push(Some(decorate_int(rng, v)));
    }
    values
}

fn random_char(rng: &mut StdRng) -> char {
    const SPECIAL: [char; 16] = [
        ' ', '\t', '\n', '\r', '\\', '\'', '"', 'é', 'ß', 'Ж', '日', '本', '😀', '\u{301}',
        '\u{7f}', '\u{ffff}',
    ];
    match rng.gen_range(0..10) {
        0..=4 => char::from(rng.gen_range(0x20u8..0x7f)),
        5 | 6 => SPECIAL[rng.gen_range(0..SPECIAL.len())],
        _ => loop {
            // Any scalar value but NUL (text cannot hold it).
            if let Some(c) = char::from_u32(rng.gen_range(1..0x11_0000)) {
                break c;
            }
        },
    }
}

fn text_values(rng: &mut StdRng) -> Vec<Option<String>> {
    let mut values: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some(" ".into()),
        Some("a".into()),
        Some("abc".into()),
        Some("héllo wörld".into()),
        Some("日本語のテキスト".into()),
        Some("😀😀😀".into()),
        Some("\\".into()),
        Some("x".repeat(12)),
        Some("y".repeat(24)),
        Some("z".repeat(10_000)),
    ];
    // Every length 0..=40 once: all tail lengths of the 12-byte blocks.
    values.extend((0..=40).map(|len| Some("k".repeat(len))));
    while values.len() < VALUES_PER_TYPE {
        let len = match rng.gen_range(0..100) {
            0 => rng.gen_range(1000..5000),
            1..=9 => rng.gen_range(40..300),
            _ => rng.gen_range(0..40),
        };
        values.push(Some((0..len).map(|_| random_char(rng)).collect()));
    }
    values
}

/// The spellings of a uuid PostgreSQL accepts.
fn spell_uuid(rng: &mut StdRng, bytes: &[u8; 16]) -> String {
    let canonical = format_uuid(bytes);
    let plain: String = canonical.chars().filter(|c| *c != '-').collect();
    let spelled = match rng.gen_range(0..6) {
        0 | 1 => canonical,
        2 => canonical.to_uppercase(),
        3 => format!("{{{canonical}}}"),
        4 => plain,
        _ => plain
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-"),
    };
    if rng.gen_bool(0.2) {
        spelled.to_uppercase()
    } else {
        spelled
    }
}

fn uuid_values(rng: &mut StdRng) -> Vec<Option<String>> {
    let mut values: Vec<Option<String>> = vec![
        None,
        Some(format_uuid(&[0; 16])),
        Some(format_uuid(&[0xff; 16])),
        Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
    ];
    while values.len() < VALUES_PER_TYPE {
        let bytes: [u8; 16] = rng.gen();
        values.push(Some(spell_uuid(rng, &bytes)));
    }
    values
}

struct Case {
    sql_type: &'static str,
    key_type: KeyType,
    hash_fn: &'static str,
}

const CASES: [Case; 6] = [
    Case {
        sql_type: "smallint",
        key_type: KeyType::SmallInt,
        hash_fn: "hashint2extended",
    },
    Case {
        sql_type: "integer",
        key_type: KeyType::Integer,
        hash_fn: "hashint4extended",
    },
    Case {
        sql_type: "bigint",
        key_type: KeyType::BigInt,
        hash_fn: "hashint8extended",
    },
    Case {
        sql_type: "text",
        key_type: KeyType::Text,
        hash_fn: "hashtextextended",
    },
    Case {
        sql_type: "varchar",
        key_type: KeyType::Text,
        hash_fn: "hashtextextended",
    },
    Case {
        sql_type: "uuid",
        key_type: KeyType::Uuid,
        hash_fn: "uuid_hash_extended",
    },
];

fn values_for(rng: &mut StdRng, ty: KeyType) -> Vec<Option<String>> {
    match ty {
        KeyType::SmallInt => int_values(rng, i16::MIN.into(), i16::MAX.into()),
        KeyType::Integer => int_values(rng, i32::MIN.into(), i32::MAX.into()),
        KeyType::BigInt => int_values(rng, i64::MIN, i64::MAX),
        KeyType::Text => text_values(rng),
        KeyType::Uuid => uuid_values(rng),
    }
}

/// Our decoding of a value; also checks that its binary form decodes to the same key.
fn our_key<'a>(ty: KeyType, value: &'a Option<String>) -> Result<ShardKey<'a>, String> {
    let Some(text) = value else {
        return Ok(ShardKey::Null);
    };
    let key = parse_text(ty, text.as_bytes()).map_err(|e| format!("we reject {text:?}: {e}"))?;
    let binary_forms: Vec<Vec<u8>> = match key {
        ShardKey::Int(v) => {
            let mut forms = vec![v.to_be_bytes().to_vec()];
            if let Ok(v) = i32::try_from(v) {
                forms.push(v.to_be_bytes().to_vec());
            }
            if let Ok(v) = i16::try_from(v) {
                forms.push(v.to_be_bytes().to_vec());
            }
            forms
        }
        ShardKey::Text(bytes) => vec![bytes.to_vec()],
        ShardKey::Uuid(bytes) => vec![bytes.to_vec()],
        ShardKey::Null => vec![],
    };
    for form in &binary_forms {
        let binary = parse_binary(ty, form).map_err(|e| format!("binary {form:?}: {e}"))?;
        if binary != key {
            return Err(format!(
                "binary {form:?} gives {binary:?}, text gives {key:?}"
            ));
        }
    }
    Ok(key)
}

#[test]
fn shards_match_satisfies_hash_partition() {
    let seed = seed();
    eprintln!("hash proof seed: {seed} (replay with OROCHI_PROOF_SEED={seed})");
    let pg = start_postgres();
    let scratch = Scratch::new(&pg, "part");
    let schema = &scratch.schema;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut failures: Vec<String> = Vec::new();
    let mut hashes_checked = 0usize;
    let mut shards_checked = 0usize;

    for case in &CASES {
        let values = values_for(&mut rng, case.key_type);
        let (ty, name) = (case.sql_type, case.sql_type);
        pg.psql(
            &format!(
                "CREATE TABLE {schema}.vals_{name} (id int, v {ty}); \
                 CREATE TABLE {schema}.parent_{name} (v {ty}) PARTITION BY HASH (v)"
            ),
            b"",
        );
        pg.psql(
            &format!("COPY {schema}.vals_{name} (id, v) FROM STDIN"),
            &copy_rows(&values),
        );
        let keys: Vec<Result<ShardKey<'_>, String>> =
            values.iter().map(|v| our_key(case.key_type, v)).collect();
        for (id, key) in keys.iter().enumerate() {
            if let Err(e) = key {
                failures.push(format!("{ty} #{id}: {e}"));
            }
        }

        // The raw column hash under the partition seed.
        let seed_sql = HASH_PARTITION_SEED as i64;
        let rows = pg.psql(
            &format!(
                "SELECT id, {}(v, {seed_sql}) FROM {schema}.vals_{name} ORDER BY id",
                case.hash_fn
            ),
            b"",
        );
        assert_eq!(rows.len(), values.len(), "{ty}: rows read back");
        for row in &rows {
            let id: usize = row[0].parse().expect("id");
            let theirs = row.get(1).cloned().unwrap_or_default();
            if let Ok(key) = &keys[id] {
                let ours = column_hash(key, HASH_PARTITION_SEED)
                    .map(|h| (h as i64).to_string())
                    .unwrap_or_default();
                hashes_checked += 1;
                if ours != theirs {
                    failures.push(format!(
                        "{ty} #{id} {:?}: {} = {theirs}, ours {ours}",
                        values[id], case.hash_fn
                    ));
                }
            }
        }

        // The partition remainder, one query per modulus.
        for modulus in MODULI {
            let rows = pg.psql(
                &format!(
                    "SELECT v.id, r FROM {schema}.vals_{name} v, generate_series(0, {m} - 1) r \
                     WHERE satisfies_hash_partition('{schema}.parent_{name}'::regclass, {m}, r, v.v) \
                     ORDER BY v.id, r",
                    m = modulus
                ),
                b"",
            );
            let mut theirs: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for row in &rows {
                theirs
                    .entry(row[0].parse().expect("id"))
                    .or_default()
                    .push(row[1].parse().expect("remainder"));
            }
            for (id, key) in keys.iter().enumerate() {
                let Ok(key) = key else { continue };
                let ours = shard_for(key, modulus).map_err(|e| e.to_string());
                let server = theirs.get(&id).cloned().unwrap_or_default();
                shards_checked += 1;
                if server.len() != 1 || Ok(server[0]) != ours {
                    failures.push(format!(
                        "{ty} #{id} {:?} modulus {modulus}: server remainders {server:?}, ours {ours:?}",
                        values[id]
                    ));
                }
            }
        }
        eprintln!("{ty}: {} values checked", values.len());
    }

    eprintln!(
        "hash proof: {hashes_checked} column hashes and {shards_checked} (value, modulus) shards checked, {} failures",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "seed {seed}: {} mismatches with PostgreSQL, first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(shards_checked, CASES.len() * VALUES_PER_TYPE * MODULI.len());
}

/// Mangles a valid spelling by a few random edits from `alphabet`.
fn mangle(rng: &mut StdRng, text: &str, alphabet: &[u8]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..rng.gen_range(0..3) {
        let pos = rng.gen_range(0..=bytes.len());
        let c = alphabet[rng.gen_range(0..alphabet.len())];
        match rng.gen_range(0..3) {
            0 => bytes.insert(pos, c),
            1 if pos < bytes.len() => {
                bytes.remove(pos);
            }
            _ if pos < bytes.len() => bytes[pos] = c,
            _ => bytes.push(c),
        }
    }
    // The alphabets are ASCII.
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn text_input_validity_matches_server() {
    const PER_TYPE: usize = 5_000;
    // No `_`, `x`, `o` or `b`: PostgreSQL 16 added those integer spellings, 15 rejects them.
    const INT_ALPHABET: &[u8] = b"0123456789 +-\t\n.e9";
    const UUID_ALPHABET: &[u8] = b"0123456789abcdefABCDEF-{} g";
    let seed = seed();
    eprintln!("input proof seed: {seed} (replay with OROCHI_PROOF_SEED={seed})");
    let pg = start_postgres();
    let scratch = Scratch::new(&pg, "input");
    let schema = &scratch.schema;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut failures = Vec::new();
    let mut checked = 0usize;
    let mut accepted = 0usize;

    for (ty, key_type) in [
        ("smallint", KeyType::SmallInt),
        ("integer", KeyType::Integer),
        ("bigint", KeyType::BigInt),
        ("uuid", KeyType::Uuid),
    ] {
        let inputs: Vec<Option<String>> = values_for(&mut rng, key_type)
            .into_iter()
            .flatten()
            .take(PER_TYPE)
            .map(|valid| {
                let alphabet = if key_type == KeyType::Uuid {
                    UUID_ALPHABET
                } else {
                    INT_ALPHABET
                };
                Some(mangle(&mut rng, &valid, alphabet))
            })
            .collect();
        pg.psql(
            &format!(
                "CREATE TABLE {schema}.in_{ty} (id int, s text); \
                 CREATE FUNCTION {schema}.try_{ty}(s text) RETURNS text LANGUAGE plpgsql AS \
                 $$ BEGIN RETURN s::{ty}::text; EXCEPTION WHEN others THEN RETURN '!'; END $$"
            ),
            b"",
        );
        pg.psql(
            &format!("COPY {schema}.in_{ty} (id, s) FROM STDIN"),
            &copy_rows(&inputs),
        );
        let rows = pg.psql(
            &format!("SELECT id, {schema}.try_{ty}(s) FROM {schema}.in_{ty} ORDER BY id"),
            b"",
        );
        assert_eq!(rows.len(), inputs.len(), "{ty}: rows read back");
        for row in &rows {
            let id: usize = row[0].parse().expect("id");
            let input = inputs[id].as_deref().unwrap_or_default();
            let ours = match parse_text(key_type, input.as_bytes()) {
                Ok(ShardKey::Int(v)) => v.to_string(),
                Ok(ShardKey::Uuid(u)) => format_uuid(&u),
                Ok(other) => format!("{other:?}"),
                Err(_) => "!".to_string(),
            };
            checked += 1;
            if row[1] != "!" {
                accepted += 1;
            }
            if ours != row[1] {
                failures.push(format!(
                    "{ty} {input:?}: server {:?}, ours {ours:?}",
                    row[1]
                ));
            }
        }
    }
    eprintln!(
        "input proof: {checked} inputs checked ({accepted} valid, {} invalid), {} failures",
        checked - accepted,
        failures.len()
    );
    // Both outcomes must be well represented, or the comparison proves little.
    assert!(
        accepted > checked / 5 && accepted < checked * 4 / 5,
        "{accepted} of {checked} valid"
    );
    assert!(
        failures.is_empty(),
        "seed {seed}: {} differences from PostgreSQL input functions:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
