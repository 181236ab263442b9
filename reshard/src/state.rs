//! The state of a reshard: one row of `orochi.reshard` on every current and new shard
//! (the `orochi` schema is never replicated, so each shard keeps its own copy). Writes go
//! to every shard; a read takes the newest row any reachable shard has, so a command run
//! from another machine, with either the old or the new configuration, finds it.

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::topology::Spec;

/// Where a reshard is. Only the transitions in `cutover`/`reverse`/`cleanup` change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `start` began: schema, copy, catch-up.
    Copying,
    /// Every table copied and streaming; ready for `verify` and `cutover`.
    CaughtUp,
    /// The routers use the new shards; the old ones are fenced; reverse replication runs.
    CutOver,
    /// `reverse` sent traffic back; forward replication runs again.
    Reversed,
    Completed,
    Cancelled,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Copying => "copying",
            Phase::CaughtUp => "caught_up",
            Phase::CutOver => "cutover",
            Phase::Reversed => "reversed",
            Phase::Completed => "completed",
            Phase::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "copying" => Phase::Copying,
            "caught_up" => Phase::CaughtUp,
            "cutover" => Phase::CutOver,
            "reversed" => Phase::Reversed,
            "completed" => Phase::Completed,
            "cancelled" => Phase::Cancelled,
            _ => return None,
        })
    }
    /// Still holding replication objects or guards.
    pub fn active(self) -> bool {
        !matches!(self, Phase::Completed | Phase::Cancelled)
    }
    /// Which side the routers should use.
    pub fn serving_new(self) -> bool {
        matches!(self, Phase::CutOver | Phase::Completed)
    }
}

#[derive(Debug, Clone)]
pub struct State {
    pub spec: Spec,
    pub phase: Phase,
    pub note: String,
    /// Seconds since the epoch.
    pub updated_at: f64,
}

/// Records `phase` on every shard given (old ones as side "old", new as "new").
pub async fn write(
    old: &[Conn],
    new: &[Conn],
    spec: &Spec,
    phase: Phase,
    note: &str,
) -> Result<()> {
    let json = serde_json::to_string(spec).map_err(|e| Error::State(e.to_string()))?;
    for (side, conns) in [("old", old), ("new", new)] {
        for c in conns {
            c.query(
                "INSERT INTO orochi.reshard (id, pool, side, phase, spec, note)
                 VALUES ($1, $2, $3, $4, $5::text::jsonb, $6)
                 ON CONFLICT (id) DO UPDATE SET phase = EXCLUDED.phase, spec = EXCLUDED.spec,
                     note = EXCLUDED.note, updated_at = now()",
                &[&spec.id, &spec.pool, &side, &phase.as_str(), &json, &note],
            )
            .await?;
        }
    }
    Ok(())
}

/// The newest reshard of `pool` recorded on this shard (any phase), if any.
pub async fn read_one(c: &Conn, pool: &str) -> Result<Option<State>> {
    let has = c
        .one("SELECT to_regclass('orochi.reshard') IS NOT NULL", &[])
        .await?
        .get::<_, bool>(0);
    if !has {
        return Ok(None);
    }
    let rows = c
        .query(
            "SELECT spec::text, phase, note, extract(epoch FROM updated_at)::float8
             FROM orochi.reshard WHERE pool = $1
             ORDER BY (phase NOT IN ('completed', 'cancelled')) DESC, updated_at DESC LIMIT 1",
            &[&pool],
        )
        .await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let spec: Spec = serde_json::from_str(&r.get::<_, String>(0))
        .map_err(|e| Error::State(format!("{}: unreadable reshard spec: {e}", c.label)))?;
    let phase = Phase::parse(&r.get::<_, String>(1))
        .ok_or_else(|| Error::State(format!("{}: unknown reshard phase", c.label)))?;
    Ok(Some(State {
        spec,
        phase,
        note: r.get(2),
        updated_at: r.get(3),
    }))
}

/// The newest state among the shards: active ones first, then the latest update.
pub fn newest(states: Vec<State>) -> Option<State> {
    states.into_iter().max_by(|a, b| {
        a.phase
            .active()
            .cmp(&b.phase.active())
            .then(a.updated_at.total_cmp(&b.updated_at))
    })
}
