//! What a session keeps of its two-phase commits still finishing off its path, and which
//! client messages must wait for them (the behaviour is `pending_commits.rs`). Data
//! only: the session's transaction state (`sharded_tx`) holds it, and the session loop
//! asks `must_wait`, without either importing the session's paths.

use crate::planner::lex::first_keyword;
use orochi_wire::FrameRef;

/// One committed transaction's COMMIT PREPAREDs, running in their own task.
pub(crate) struct PendingCommit {
    /// The shards still holding the transaction prepared when the client was answered.
    pub shards: Vec<usize>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Whether a client message must wait for pending COMMIT PREPAREDs before it is handled.
pub(crate) fn must_wait(f: FrameRef<'_>) -> bool {
    match f.tag {
        b'S' | b'H' | b'X' => false,
        b'Q' => {
            let sql = std::str::from_utf8(f.body)
                .unwrap_or_default()
                .trim_end_matches('\0');
            // A lone BEGIN reads nothing; anything with it may.
            let lone_begin = matches!(first_keyword(sql).as_str(), "begin" | "start")
                && !crate::planner::session::has_inner_semicolon(sql);
            !lone_begin
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::must_wait;
    use orochi_wire::FrontendMessage;

    #[test]
    fn only_a_lone_begin_sync_and_flush_pass_without_waiting() {
        let q = |s: &str| FrontendMessage::Query(s.into()).to_frame();
        for f in [
            q("BEGIN"),
            q("begin isolation level repeatable read;"),
            q("START TRANSACTION"),
            FrontendMessage::Sync.to_frame(),
        ] {
            assert!(!must_wait(f.view()), "{f:?}");
        }
        for f in [
            q("SELECT 1"),
            q("BEGIN; SELECT * FROM users"),
            q("COMMIT"),
            FrontendMessage::Parse {
                name: String::new(),
                query: "BEGIN".into(),
                param_types: vec![],
            }
            .to_frame(),
        ] {
            assert!(must_wait(f.view()), "{f:?}");
        }
    }
}
