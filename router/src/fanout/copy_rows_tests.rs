//! Row splitting of COPY data: the same shards for any cut of the input, PostgreSQL's
//! row and field rules (escapes, quotes, line endings, end marker), and its errors.

use super::{csv_field, text_field, Field, Splitter};
use crate::planner::sharding::{CopyFormat, CopyIn, CopyKey, KeyAt};
use orochi_config::KeyType;
use orochi_sharding::{shard_for, ShardKey};

fn spec(format: CopyFormat, ty: KeyType, header: bool) -> CopyIn {
    let csv = format == CopyFormat::Csv;
    CopyIn {
        format,
        delimiter: if csv { b',' } else { b'\t' },
        quote: b'"',
        escape: b'"',
        null: if csv { vec![] } else { b"\\N".to_vec() },
        header,
        key: Some(CopyKey {
            ty,
            column: "k".into(),
            at: KeyAt::Field(1),
            force_null: false,
            force_not_null: false,
        }),
    }
}

/// Feeds `data` in chunks of `chunk` bytes; the bytes each of 4 shards gets.
fn split(spec: &CopyIn, data: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, (String, String)> {
    let mut s = Splitter::new(spec.clone(), Some(1), 4);
    let mut out = vec![Vec::new(); 4];
    let err = |e: super::SplitError| (e.code.to_string(), e.message);
    for c in data.chunks(chunk.max(1)) {
        s.feed(c).map_err(err)?;
        for (i, b) in s.take(0) {
            out[i].extend_from_slice(&b);
        }
    }
    s.finish().map_err(err)?;
    for (i, b) in s.take(0) {
        out[i].extend_from_slice(&b);
    }
    Ok(out)
}

fn int_shard(v: i64) -> usize {
    shard_for(&ShardKey::Int(v), 4).unwrap()
}

fn expect(rows: &[(&str, usize)]) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new(); 4];
    for (r, s) in rows {
        out[*s].extend_from_slice(r.as_bytes());
    }
    out
}

#[test]
fn text_rows_go_whole_to_their_key_shard_however_the_data_is_cut() {
    let sp = spec(CopyFormat::Text, KeyType::BigInt, false);
    // An escaped tab and newline in the first field, an escaped backslash, octal and hex
    // escapes in the key field, a NULL key.
    let rows = [
        ("a\\tb\\\nc\t1\tx\n", int_shard(1)),
        ("\\\\\t\\062\\x33\ty\n", int_shard(23)),
        ("z\t-7\t\\N\n", int_shard(-7)),
        ("n\t\\N\tq\n", shard_for(&ShardKey::Null, 4).unwrap()),
    ];
    let data: String = rows.iter().map(|r| r.0).collect();
    let want = expect(&rows);
    for chunk in 1..=data.len() {
        assert_eq!(
            split(&sp, data.as_bytes(), chunk).unwrap(),
            want,
            "chunk {chunk}"
        );
    }
}

#[test]
fn line_endings_follow_the_first_line() {
    let sp = spec(CopyFormat::Text, KeyType::BigInt, false);
    let crlf = "a\t1\r\nb\t2\r\n";
    let want = expect(&[("a\t1\r\n", int_shard(1)), ("b\t2\r\n", int_shard(2))]);
    for chunk in 1..=crlf.len() {
        assert_eq!(split(&sp, crlf.as_bytes(), chunk).unwrap(), want);
    }
    let cr = "a\t1\rb\t2\r";
    assert_eq!(
        split(&sp, cr.as_bytes(), 3).unwrap(),
        expect(&[("a\t1\r", int_shard(1)), ("b\t2\r", int_shard(2))])
    );
    // Mixed endings are PostgreSQL's errors, whatever the cut.
    for bad in ["a\t1\nb\t2\r\n", "a\t1\r\nb\t2\n", "a\t1\rb\t2\n"] {
        for chunk in [1, 4, 100] {
            let e = split(&sp, bad.as_bytes(), chunk).unwrap_err();
            assert_eq!(e.0, "22P04", "{bad:?}: {e:?}");
        }
    }
    // A last line without its ending gets the data's ending.
    assert_eq!(
        split(&sp, b"a\t1\r\nb\t2", 2).unwrap(),
        expect(&[("a\t1\r\n", int_shard(1)), ("b\t2\r\n", int_shard(2))])
    );
}

#[test]
fn the_end_marker_stops_the_data() {
    let sp = spec(CopyFormat::Text, KeyType::BigInt, false);
    assert_eq!(
        split(&sp, b"a\t1\n\\.\nb\t2\n", 1).unwrap(),
        expect(&[("a\t1\n", int_shard(1))])
    );
    // Text before the marker on its line is a last row (PostgreSQL 15).
    assert_eq!(
        split(&sp, b"a\t1\nb\t2\\.\nc\t3\n", 5).unwrap(),
        expect(&[("a\t1\n", int_shard(1)), ("b\t2\n", int_shard(2))])
    );
    let e = split(&sp, b"a\t1\\.x\n", 100).unwrap_err();
    assert_eq!(e.0, "22P04");
    // An escaped backslash before a dot is data.
    assert_eq!(
        split(&sp, b"\\\\.\t1\n", 1).unwrap(),
        expect(&[("\\\\.\t1\n", int_shard(1))])
    );
    // In CSV only a line of its own.
    let csv = spec(CopyFormat::Csv, KeyType::BigInt, false);
    assert_eq!(
        split(&csv, b"\\.x,1\n\\.\n9,9\n", 2).unwrap(),
        expect(&[("\\.x,1\n", int_shard(1))])
    );
}

#[test]
fn csv_quotes_escapes_header_and_nulls() {
    let mut sp = spec(CopyFormat::Csv, KeyType::Text, true);
    let text = |v: &str| shard_for(&ShardKey::Text(v.as_bytes()), 4).unwrap();
    let null = shard_for(&ShardKey::Null, 4).unwrap();
    let header = "h1,h2\n";
    let rows = [
        ("\"a,\nb\",\"k\"\"1\"\n", text("k\"1")),
        ("x,k\"2\",ignored\n", text("k2")),
        ("x,\n", null),
        ("x,\"\"\n", text("")),
        ("x,p\"q,r\"s\n", text("pq,rs")),
    ];
    let data: String = std::iter::once(header)
        .chain(rows.iter().map(|r| r.0))
        .collect();
    let mut want = expect(&rows);
    for w in want.iter_mut() {
        w.splice(0..0, header.bytes());
    }
    for chunk in 1..=data.len() {
        assert_eq!(
            split(&sp, data.as_bytes(), chunk).unwrap(),
            want,
            "chunk {chunk}"
        );
    }
    // ESCAPE different from QUOTE: \" inside quotes is a quote, and does not close them.
    sp.escape = b'\\';
    sp.header = false;
    assert_eq!(
        split(&sp, b"x,\"a\\\",\nb\"\n", 1).unwrap(),
        expect(&[("x,\"a\\\",\nb\"\n", text("a\",\nb"))])
    );
    // FORCE_NOT_NULL: the NULL marker is a value; FORCE_NULL: a quoted marker is NULL.
    sp.escape = b'"';
    sp.null = b"NA".to_vec();
    let key = sp.key.as_mut().unwrap();
    key.force_not_null = true;
    assert_eq!(
        split(&sp, b"x,NA\n", 3).unwrap(),
        expect(&[("x,NA\n", text("NA"))])
    );
    let key = sp.key.as_mut().unwrap();
    key.force_not_null = false;
    key.force_null = true;
    assert_eq!(
        split(&sp, b"x,\"NA\"\n", 3).unwrap(),
        expect(&[("x,\"NA\"\n", null)])
    );
    // An unterminated quote at the end.
    assert_eq!(split(&sp, b"x,\"open\n", 100).unwrap_err().0, "22P04");
}

#[test]
fn binary_tuples_split_by_their_key_field() {
    let sp = spec(CopyFormat::Binary, KeyType::BigInt, false);
    let mut header = b"PGCOPY\n\xff\r\n\0".to_vec();
    header.extend_from_slice(&0i32.to_be_bytes());
    header.extend_from_slice(&4i32.to_be_bytes());
    header.extend_from_slice(b"extn");
    let tuple = |id: Option<i32>| {
        let mut t = 2i16.to_be_bytes().to_vec();
        t.extend_from_slice(&1i32.to_be_bytes());
        t.push(b'x');
        match id {
            Some(v) => {
                t.extend_from_slice(&4i32.to_be_bytes());
                t.extend_from_slice(&v.to_be_bytes());
            }
            None => t.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        t
    };
    let trailer = (-1i16).to_be_bytes().to_vec();
    let ids = [Some(1), Some(-40), None, Some(i32::MAX)];
    let mut data = header.clone();
    let mut want = vec![header.clone(); 4];
    for id in ids {
        data.extend(tuple(id));
        let s = match id {
            Some(v) => int_shard(v.into()),
            None => shard_for(&ShardKey::Null, 4).unwrap(),
        };
        want[s].extend(tuple(id));
    }
    data.extend(&trailer);
    for w in want.iter_mut() {
        w.extend(&trailer);
    }
    for chunk in 1..=data.len() {
        assert_eq!(split(&sp, &data, chunk).unwrap(), want, "chunk {chunk}");
    }
    // Data after the trailer is PostgreSQL's error, however it arrives.
    data.extend(b"more");
    for chunk in [1, 5, 1000] {
        assert_eq!(
            split(&sp, &data, chunk).unwrap_err().0,
            "22P04",
            "chunk {chunk}"
        );
    }
    assert_eq!(split(&sp, b"PGCOPX\n", 100).unwrap_err().0, "22P04");
    // A tuple cut short by the end of the data.
    let mut short = header.clone();
    short.extend(&tuple(Some(1))[..7]);
    assert_eq!(split(&sp, &short, 100).unwrap_err().0, "22P04");
    // A key of the wrong width cannot be hashed: refused, not guessed.
    let mut odd = header;
    odd.extend(2i16.to_be_bytes());
    odd.extend(1i32.to_be_bytes());
    odd.push(b'x');
    odd.extend(3i32.to_be_bytes());
    odd.extend([0, 0, 1]);
    assert!(split(&sp, &odd, 100).is_err());
}

#[test]
fn unreadable_keys_are_refused() {
    let sp = spec(CopyFormat::Text, KeyType::Integer, false);
    let e = split(&sp, b"a\t1\nb\tseven\n", 100).unwrap_err();
    assert_eq!(e.0, "22P02", "{e:?}");
    assert!(e.1.contains("line 2"), "{e:?}");
    // Too few fields: sent to a shard, which rejects the row itself.
    assert!(split(&sp, b"only\n", 100).is_ok());
}

fn field(f: Option<Field>) -> Option<Option<String>> {
    f.map(|f| match f {
        Field::Null => None,
        Field::Value(v) => Some(String::from_utf8(v).unwrap()),
    })
}

#[test]
fn fields_are_read_as_postgresql_reads_them() {
    let t = spec(CopyFormat::Text, KeyType::Text, false);
    let tf = |row: &[u8], at| field(text_field(row, at, &t));
    // Escapes: \t, \\, octal, hex (one or two digits), any other byte as itself; an
    // escaped delimiter does not split.
    assert_eq!(
        tf(br"x\t\\\101\x41\x4g\q\	y", 0),
        Some(Some("x\t\\AA\x04gq\ty".into()))
    );
    assert_eq!(tf(b"a\tb", 1), Some(Some("b".into())));
    assert_eq!(tf(b"a\tb", 2), None);
    // A backslash as the last byte of a row (a client's malformed data) is no panic.
    assert_eq!(tf(b"1\t\\", 1), Some(Some(String::new())));
    assert_eq!(tf(b"1\t\\", 2), None);
    assert_eq!(tf(b"\\", 0), Some(Some(String::new())));
    // The NULL marker is compared before unescaping: \\N is the text \N.
    assert_eq!(tf(b"a\t\\\\N\t\\N", 1), Some(Some("\\N".into())));
    assert_eq!(tf(b"a\t\\\\N\t\\N", 2), Some(None));
    let c = spec(CopyFormat::Csv, KeyType::Text, false);
    let cf = |row: &str, at| field(csv_field(row.as_bytes(), at, &c));
    assert_eq!(cf(r#"x,k"2",ignored"#, 1), Some(Some("k2".into())));
    assert_eq!(cf(r#"x,k"2",ignored"#, 2), Some(Some("ignored".into())));
    assert_eq!(cf(r#""a,b",,"""#, 0), Some(Some("a,b".into())));
    assert_eq!(cf(r#""a,b",,"""#, 1), Some(None));
    assert_eq!(cf(r#""a,b",,"""#, 2), Some(Some(String::new())));
    assert_eq!(cf(r#""a,b",,"""#, 3), None);
    assert_eq!(cf(r#""say ""hi""""#, 0), Some(Some(r#"say "hi""#.into())));
}
