//! Spare I/O buffers, kept per thread: PgBouncer's idea (its `sbuf`s borrow buffers from
//! a shared list only while a client is busy), issue 16.
//!
//! An idle session holds no buffer (`Session::shrink_buffers`), so ten thousand idle
//! clients cost no buffer memory. Freeing them at every idle moment and allocating them
//! again at the next message cost three allocations and frees per transaction; handing
//! them to this list and taking them back costs a push and a pop. The list is bounded,
//! and a buffer a large result grew is given back to the allocator instead, so what it
//! keeps is a few megabytes at most, whatever the number of clients.
//!
//! Per thread, not shared: a session takes and gives back on the thread that runs it,
//! without a lock (tokio may move a task between a multi-thread runtime's workers; a
//! buffer then simply joins the other thread's list).

use bytes::BytesMut;
use std::cell::RefCell;

/// Buffers kept per thread: enough for the sessions one thread serves at a time.
const KEEP: usize = 256;
/// A new buffer's room, when no spare is there: PgBouncer's `pkt_buf`. Lent whole, so
/// a transaction's messages are encoded without growing it.
const NEW: usize = 4096;
/// A buffer with less room than this is not worth keeping.
const SMALLEST: usize = 1024;
/// A buffer grown past this (a large result, a `COPY`) goes back to the allocator.
const LARGEST: usize = 16 * 1024;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// Gives an empty `b`'s memory to this thread's spares; `b` is left without any.
pub fn put_back(b: &mut BytesMut) {
    put_back_all([b]);
}

/// [`put_back`] of a session's buffers together: one look at the thread's list, not
/// one a buffer (every transaction ends here).
pub fn put_back_all<const N: usize>(bufs: [&mut BytesMut; N]) {
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        for b in bufs {
            if b.is_empty() && b.capacity() != 0 {
                let b = std::mem::take(b);
                if (SMALLEST..=LARGEST).contains(&b.capacity()) && s.len() < KEEP {
                    s.push(b);
                }
            }
        }
    });
}

/// Gives `b` memory when it has none: a spare buffer, or a new one of `NEW` bytes.
pub fn lend(b: &mut BytesMut) {
    lend_all([b]);
}

/// [`lend`] of several buffers: one look at the thread's list.
pub fn lend_all<const N: usize>(bufs: [&mut BytesMut; N]) {
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        for b in bufs {
            if b.capacity() == 0 {
                *b = s.pop().unwrap_or_else(|| BytesMut::with_capacity(NEW));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_lent_again_and_oversized_ones_are_freed() {
        let mut b = BytesMut::with_capacity(8192);
        let ptr = b.as_ptr();
        put_back(&mut b);
        assert_eq!(b.capacity(), 0, "the session keeps nothing while idle");
        let mut again = BytesMut::new();
        lend(&mut again);
        assert_eq!(again.as_ptr(), ptr, "the same memory, not a new allocation");
        assert!(again.is_empty() && again.capacity() >= 8192);

        let mut big = BytesMut::with_capacity(LARGEST * 4);
        put_back(&mut big);
        let mut next = BytesMut::new();
        lend(&mut next);
        // Kept, it would be lent here (nothing else is spare).
        assert_eq!(next.capacity(), NEW, "a large result's buffer is not kept");

        let (mut one, mut two) = (BytesMut::with_capacity(2048), BytesMut::with_capacity(3072));
        let ptrs = [one.as_ptr(), two.as_ptr()];
        put_back_all([&mut one, &mut two, &mut BytesMut::new()]);
        assert_eq!((one.capacity(), two.capacity()), (0, 0));
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        lend_all([&mut a, &mut b]);
        let mut got = [a.as_ptr(), b.as_ptr()];
        got.sort();
        let mut want = ptrs;
        want.sort();
        assert_eq!(
            got, want,
            "both given back are lent again, nothing new allocated"
        );

        let mut full = BytesMut::from(&b"unsent"[..]);
        put_back(&mut full);
        assert_eq!(
            &full[..],
            b"unsent",
            "a buffer with bytes in it is left alone"
        );
    }
}
