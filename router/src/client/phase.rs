//! Whether a session holds a server connection, and the state that exists only while it
//! does. Written as an enum so that the state of a server conversation cannot be read or
//! left behind when there is no server: attaching a connection starts that state afresh,
//! detaching it drops it.
//!
//! What goes in [`Attached`] and what stays in the session's parts:
//! - in `Attached`: the checked-out connection; whether the server skips messages until
//!   Sync after an error (`server_skipping`); whether the unnamed statement exists on
//!   this connection (`unnamed_on_server`); whether the server is in `COPY FROM STDIN`
//!   (`copy_in`). Each describes the one connection and is false on a fresh one.
//! - in the client leg (`client_leg.rs`): the expect queue (its capacity is kept across
//!   checkouts, so a transaction does not allocate it again; it is empty whenever no
//!   server is attached).
//! - in the server leg (`server_leg.rs`, which holds this `Phase`): `unsynced` (the
//!   router answers some extended-protocol messages while idle, and the client's Sync
//!   must still close them), and `tx_status` (a multi-shard transaction or a fan-out has
//!   one while no single server is attached).
//!
//! No allocation: the connection moves into the variant and out of it.

use crate::backend::Checkout;

/// A session's phase after login.
// Inline, as the `Option<Checkout>` it replaces: boxing the attached state would cost an
// allocation per checkout, and the session is as large either way.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Phase {
    /// No server connection: the client is between transactions (or its transaction's
    /// connections are parked, or it runs a fan-out, which holds its own).
    Idle,
    /// A server connection is checked out for this client.
    Attached(Attached),
}

/// One attached server connection and what the router knows of its conversation.
pub(crate) struct Attached {
    pub(crate) co: Checkout,
    /// The server reported an error in the extended protocol and skips messages until
    /// Sync: what the client sends meanwhile gets no answer.
    pub(crate) server_skipping: bool,
    /// The unnamed statement exists on this connection.
    pub(crate) unnamed_on_server: bool,
    /// The server answered CopyInResponse and waits for CopyDone or CopyFail.
    pub(crate) copy_in: bool,
}

impl Phase {
    /// Attaches `co` with a fresh conversation; the session must be idle.
    pub(crate) fn attach(&mut self, co: Checkout) {
        debug_assert!(self.is_idle(), "a session holds one server at a time");
        *self = Phase::Attached(Attached {
            co,
            server_skipping: false,
            unnamed_on_server: false,
            copy_in: false,
        });
    }

    /// Detaches the server connection with its conversation's state.
    pub(crate) fn take(&mut self) -> Option<Attached> {
        match std::mem::replace(self, Phase::Idle) {
            Phase::Idle => None,
            Phase::Attached(a) => Some(a),
        }
    }

    /// Detaches the server connection.
    pub(crate) fn detach(&mut self) -> Option<Checkout> {
        self.take().map(|a| a.co)
    }

    pub(crate) fn is_idle(&self) -> bool {
        matches!(self, Phase::Idle)
    }

    pub(crate) fn is_attached(&self) -> bool {
        !self.is_idle()
    }

    pub(crate) fn attached(&self) -> Option<&Attached> {
        match self {
            Phase::Idle => None,
            Phase::Attached(a) => Some(a),
        }
    }

    pub(crate) fn attached_mut(&mut self) -> Option<&mut Attached> {
        match self {
            Phase::Idle => None,
            Phase::Attached(a) => Some(a),
        }
    }

    /// The attached server connection.
    pub(crate) fn server(&self) -> Option<&Checkout> {
        self.attached().map(|a| &a.co)
    }

    pub(crate) fn server_mut(&mut self) -> Option<&mut Checkout> {
        self.attached_mut().map(|a| &mut a.co)
    }

    /// The server skips messages until Sync (never while idle).
    pub(crate) fn server_skipping(&self) -> bool {
        self.attached().is_some_and(|a| a.server_skipping)
    }

    /// The server is in `COPY FROM STDIN` (never while idle).
    pub(crate) fn copy_in(&self) -> bool {
        self.attached().is_some_and(|a| a.copy_in)
    }

    /// The unnamed statement exists on the attached connection (never while idle).
    pub(crate) fn unnamed_on_server(&self) -> bool {
        self.attached().is_some_and(|a| a.unnamed_on_server)
    }

    /// Sets `server_skipping` on the attached connection (nothing to record while idle).
    pub(crate) fn set_server_skipping(&mut self, on: bool) {
        if let Some(a) = self.attached_mut() {
            a.server_skipping = on;
        }
    }

    /// Sets `copy_in` on the attached connection (nothing to record while idle).
    pub(crate) fn set_copy_in(&mut self, on: bool) {
        if let Some(a) = self.attached_mut() {
            a.copy_in = on;
        }
    }

    /// Sets `unnamed_on_server` on the attached connection (nothing to record while idle).
    pub(crate) fn set_unnamed_on_server(&mut self, on: bool) {
        if let Some(a) = self.attached_mut() {
            a.unnamed_on_server = on;
        }
    }
}
