//! Bob Jenkins' lookup3 hash as PostgreSQL uses it for `*_extended` hash support functions.
//!
//! Hand-written because no crate reproduces PostgreSQL's variant bit for bit: the 64-bit seed
//! folded in as a pretend 12-byte block, the tail layout (the lowest byte of `c` is kept for the
//! length, so tail bytes 8..11 land one byte higher), and the `(b << 32) | c` result. This is the
//! little-endian layout, i.e. what a PostgreSQL server on x86-64 or AArch64 computes; a server
//! built for a big-endian CPU hashes byte strings differently and is not supported.

#[inline]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

#[inline]
fn finish(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// Initial state for a key of `len` bytes, perturbed by `seed` (0 means no seed).
#[inline]
fn init(len: u32, seed: u64) -> (u32, u32, u32) {
    let start = 0x9e37_79b9_u32.wrapping_add(len).wrapping_add(3_923_095);
    let (mut a, mut b, mut c) = (start, start, start);
    if seed != 0 {
        a = a.wrapping_add((seed >> 32) as u32);
        b = b.wrapping_add(seed as u32);
        mix(&mut a, &mut b, &mut c);
    }
    (a, b, c)
}

#[inline]
fn le32(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .take(4)
        .enumerate()
        .fold(0, |acc, (i, &byte)| acc | (u32::from(byte) << (8 * i)))
}

/// PostgreSQL's `hash_bytes_extended(k, len, seed)` (also reached as `hash_any_extended`).
pub fn hash_bytes_extended(key: &[u8], seed: u64) -> u64 {
    // PostgreSQL keeps the length in a uint32 computed from an int; keys are far below 4 GiB.
    let (mut a, mut b, mut c) = init(key.len() as u32, seed);
    let mut rest = key;
    while rest.len() >= 12 {
        a = a.wrapping_add(le32(&rest[0..4]));
        b = b.wrapping_add(le32(&rest[4..8]));
        c = c.wrapping_add(le32(&rest[8..12]));
        mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    // The last 0..=11 bytes: `a` and `b` take little-endian words (zero padded); `c` takes
    // bytes 8..11 shifted up by one byte, its lowest byte being reserved for the length.
    a = a.wrapping_add(le32(rest));
    b = b.wrapping_add(le32(rest.get(4..).unwrap_or(&[])));
    c = c.wrapping_add(le32(rest.get(8..).unwrap_or(&[])) << 8);
    finish(&mut a, &mut b, &mut c);
    (u64::from(b) << 32) | u64::from(c)
}

/// PostgreSQL's `hash_bytes_uint32_extended(k, seed)`: the hash of one 32-bit word.
pub fn hash_uint32_extended(k: u32, seed: u64) -> u64 {
    let (mut a, mut b, mut c) = init(4, seed);
    a = a.wrapping_add(k);
    finish(&mut a, &mut b, &mut c);
    (u64::from(b) << 32) | u64::from(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint32_shortcut_equals_bytes_of_the_word() {
        // PostgreSQL documents hash_bytes_uint32 as hash_bytes(&k, 4) on the native (LE) layout.
        for k in [0u32, 1, 42, 0xdead_beef, u32::MAX] {
            for seed in [0u64, 1, 0x7A5B_2236_7996_DCFD] {
                assert_eq!(
                    hash_uint32_extended(k, seed),
                    hash_bytes_extended(&k.to_le_bytes(), seed)
                );
            }
        }
    }

    #[test]
    fn every_tail_length_reaches_the_hash() {
        // Flipping the last byte of keys of each length 0..=40 must change the hash; this fails
        // if a tail byte were dropped.
        let data: Vec<u8> = (0u8..41)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        for len in 1..=data.len() {
            let mut changed = data[..len].to_vec();
            changed[len - 1] ^= 0x80;
            assert_ne!(
                hash_bytes_extended(&data[..len], 7),
                hash_bytes_extended(&changed, 7),
                "len {len}"
            );
        }
    }

    #[test]
    fn seed_zero_means_unseeded_and_other_seeds_differ() {
        assert_ne!(
            hash_bytes_extended(b"abc", 0),
            hash_bytes_extended(b"abc", 1)
        );
        assert_ne!(hash_uint32_extended(5, 0), hash_uint32_extended(5, 1 << 32));
    }
}
