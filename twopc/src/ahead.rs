//! PREPAREs a caller pipelines behind a transaction's last statement (issue 16).
//!
//! A router running one autocommit statement on several shards knows, before sending it,
//! that the statement ends its transaction. So it reserves the two-phase commit's gid
//! base here ([`TwoPc::ahead`]), sends `PREPARE TRANSACTION '<base>_s<k>'` in the same
//! write as the statement on every shard but the coordinator (the lowest), records each
//! answer ([`Ahead::answer`]) and commits with [`TwoPc::commit_ahead`]. The first round
//! then has nothing left to send: after the statement, the coordinator's decision and
//! COMMIT are the client's only round trip, where a commit without pipelining needs two
//! more (the PREPAREs, then the decision). A statement that failed on a shard makes
//! PostgreSQL answer that shard's PREPARE with `ROLLBACK`; the caller then rolls the
//! others back with `ROLLBACK PREPARED` ([`Ahead::prepared_gid`]).

use crate::error::ParticipantError;
use crate::gid::GidBase;
use crate::sql;
use crate::twopc::TwoPc;

/// The answer to each pipelined PREPARE, by shard.
pub(crate) type Answers = Vec<(usize, Result<String, ParticipantError>)>;

/// A two-phase commit whose PREPAREs the caller sends itself.
#[derive(Debug)]
pub struct Ahead {
    base: GidBase,
    answers: Answers,
}

impl TwoPc {
    /// The gid base for a commit over `written` (two or more distinct shards), for
    /// PREPAREs pipelined behind the last statement. `None` for fewer than two.
    pub fn ahead(&self, written: &[usize]) -> Option<Ahead> {
        let coordinator = *written.iter().min()?;
        (written.iter().any(|&s| s != coordinator)).then(|| Ahead {
            base: self.gids.next(coordinator),
            answers: Vec::new(),
        })
    }
}

impl Ahead {
    pub fn base(&self) -> &GidBase {
        &self.base
    }

    /// The statement to pipeline on `shard`: `PREPARE TRANSACTION` under its gid, or
    /// `None` on the coordinator (which commits with the decision instead).
    pub fn prepare_sql(&self, shard: usize) -> Option<String> {
        (shard != self.base.coordinator()).then(|| sql::prepare(&self.base.participant(shard)))
    }

    /// Records the answer to the PREPARE pipelined on `shard`: its command tag (a failed
    /// transaction answers `ROLLBACK`), or the server's error.
    pub fn answer(&mut self, shard: usize, r: Result<String, ParticipantError>) {
        self.answers.retain(|(s, _)| *s != shard);
        self.answers.push((shard, r));
    }

    /// The gid `shard` holds prepared, if its PREPARE answered so: what a caller that
    /// does not commit must roll back (`ROLLBACK PREPARED`).
    pub fn prepared_gid(&self, shard: usize) -> Option<String> {
        self.answers
            .iter()
            .any(|(s, r)| *s == shard && r.as_deref().is_ok_and(|t| t == crate::slot::PREPARE_TAG))
            .then(|| self.base.participant(shard))
    }

    pub(crate) fn into_parts(self) -> (GidBase, Answers) {
        (self.base, self.answers)
    }
}
