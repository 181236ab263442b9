//! Runs one parsed command against the view and produces the reply messages.

use crate::command::Command;
use crate::render::render;
use crate::view::AdminView;
use crate::AdminError;
use orochi_wire::{BackendMessage, ErrorFields};

/// Replies to one command, without the final ReadyForQuery. `Err` is sent as an
/// ErrorResponse by the caller.
pub async fn execute(
    cmd: &Command,
    view: &dyn AdminView,
) -> Result<Vec<BackendMessage>, AdminError> {
    let done = || BackendMessage::CommandComplete(cmd.tag().to_string());
    match cmd {
        Command::Show(what) => Ok(render(*what, view).into_messages()),
        Command::Reload => {
            let summary = view.reload().await?;
            tracing::info!(%summary, "configuration reloaded from the admin console");
            let mut out = Vec::new();
            if !summary.is_empty() {
                out.push(notice(summary));
            }
            out.push(done());
            Ok(out)
        }
        Command::Pause(db) => {
            view.pause(db.clone()).await?;
            Ok(vec![done()])
        }
        Command::Resume(db) => {
            view.resume(db.clone())?;
            Ok(vec![done()])
        }
        Command::Reconnect(db) => {
            view.reconnect(db.clone())?;
            Ok(vec![done()])
        }
        Command::KillClient(id) => {
            if view.kill_client(*id) {
                Ok(vec![done()])
            } else {
                Err(AdminError::WrongState(format!("no client with id {id}")))
            }
        }
        Command::Shutdown => {
            tracing::info!("shutdown requested from the admin console");
            view.shutdown();
            Ok(vec![done()])
        }
        Command::Set => Ok(vec![done()]),
        Command::ReshardSwitch { pool, map } => {
            let databases = view.reshard_switch(pool, map)?;
            tracing::info!(pool = %pool, databases = %databases.join(","), "shard map switched from the admin console");
            Ok(crate::reshard::confirmation(pool, &databases).into_messages())
        }
    }
}

fn notice(message: String) -> BackendMessage {
    BackendMessage::NoticeResponse(ErrorFields {
        severity: "NOTICE".into(),
        code: "00000".into(),
        message,
        other: vec![],
    })
}
