//! One shard's answer stream inside a fan-out: the connection, what it still owes, and
//! the frames that matter to a merge. Notices go to the client as they come.

use crate::backend::Checkout;
use crate::error::Result;
use bytes::{Bytes, BytesMut};
use orochi_wire::{Frame, FrontendMessage};

/// How a merge ended.
pub(super) enum Merged {
    /// The CommandComplete to send once the work is committed.
    Tag(Bytes),
    /// A shard's (or the merge's) error was sent to the client.
    Sent,
    /// The merge cannot combine these columns (nothing was sent): why.
    Unmergeable(String),
}

/// A frame of one shard's answer, as the merge sees it.
pub(super) enum Event {
    Header(Frame),
    /// CopyInResponse: the shard waits for COPY data (only for a [`Stream::copy_in`]).
    CopyIn(Frame),
    NoData,
    Row(Bytes),
    Copy(Frame),
    Complete(String),
    Error(Frame),
}

/// The answer to a `PREPARE TRANSACTION` sent behind the statement (`fanout.rs`,
/// `orochi_twopc::Ahead`), read with the stream's last ReadyForQuery.
pub(super) enum Trailer {
    /// Nothing sent behind the statement.
    None,
    /// Sent; not read yet.
    Pending,
    /// Its command tag (`ROLLBACK` when the statement had failed) or its error.
    Answered(std::result::Result<String, orochi_wire::PgError>),
}

/// One shard's connection in a fan-out.
pub(super) struct Stream {
    pub(super) co: Checkout,
    /// ReadyForQuery still owed by the server.
    pub(super) readies: usize,
    /// The router's own statements sent before the client's (a BEGIN) whose
    /// CommandCompletes are not the statement's.
    pub(super) lead: usize,
    /// A statement of the router's sent behind the client's.
    pub(super) trailer: Trailer,
    /// The statement's CommandComplete (or error) was read.
    pub(super) complete: bool,
    /// The statement is a COPY FROM STDIN the router feeds (else a shard asking for
    /// COPY data is refused).
    pub(super) copy_in: bool,
}

/// Where a CancelRequest for this checkout's backend goes.
pub(crate) fn cancel_target(co: &Checkout) -> crate::cancel::CancelTarget {
    crate::cancel::CancelTarget::new(&co.pool.target, co.conn_ref())
}

impl Stream {
    /// Every stream's connection back to its pool (each has been drained to
    /// ReadyForQuery; a broken one is closed by the pool).
    pub(super) fn release_all(streams: Vec<Stream>) {
        for s in streams {
            s.co.release();
        }
    }

    /// The next frame that matters to the merge; notices go to the client as they come.
    pub(super) async fn next(&mut self, notices: &mut BytesMut) -> Result<Event> {
        loop {
            let f = self.co.conn().read_frame().await?;
            match f.tag {
                b'T' => return Ok(Event::Header(f)),
                b'n' => return Ok(Event::NoData),
                b'D' => return Ok(Event::Row(f.body)),
                b'H' | b'd' | b'c' => return Ok(Event::Copy(f)),
                b'C' => {
                    let tag =
                        String::from_utf8_lossy(f.body.strip_suffix(b"\0").unwrap_or(&f.body))
                            .into_owned();
                    if self.lead > 0 {
                        self.lead -= 1;
                        continue; // our own BEGIN
                    }
                    self.complete = true;
                    return Ok(Event::Complete(tag));
                }
                b'E' => {
                    self.complete = true;
                    return Ok(Event::Error(f));
                }
                b'N' => f.encode(notices),
                b'Z' => {
                    self.readies = self.readies.saturating_sub(1);
                }
                b'G' if self.copy_in => return Ok(Event::CopyIn(f)),
                b'G' => {
                    // Only the COPY FROM path feeds COPY data; refuse the server's request.
                    let mut b = BytesMut::new();
                    FrontendMessage::CopyFail("COPY FROM across shards is not supported".into())
                        .encode(&mut b);
                    self.co.conn().write_all(&b).await?;
                }
                _ => {}
            }
        }
    }

    /// Reads up to the last ReadyForQuery, and the trailer's answer on the way (the
    /// frames before the last ReadyForQuery but one are the statement's).
    pub(super) async fn drain(&mut self) -> Result<()> {
        while self.readies > 0 {
            let f = self.co.conn().read_frame().await?;
            let trailer = self.readies == 1 && matches!(self.trailer, Trailer::Pending);
            match f.tag {
                b'Z' => self.readies -= 1,
                b'C' if trailer => {
                    let tag = f.body.strip_suffix(b"\0").unwrap_or(&f.body);
                    self.trailer = Trailer::Answered(Ok(String::from_utf8_lossy(tag).into_owned()));
                }
                b'E' if trailer => {
                    if let Ok(orochi_wire::BackendMessage::ErrorResponse(fields)) =
                        orochi_wire::BackendMessage::decode(&f)
                    {
                        self.trailer = Trailer::Answered(Err(orochi_wire::PgError { fields }));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
