//! Fault injection points, so crash tests can kill the router at an exact protocol step.
//!
//! Off unless asked for, and then only by an explicit choice:
//! - `OROCHI_2PC_FAULT=<point>` (or `<point>:<n>`, the n-th time the point is reached):
//!   the process calls [`std::process::abort`] there, which is as abrupt as SIGKILL for
//!   the shards (sockets close, nothing is flushed or cleaned up). Read once per process.
//! - [`Faults::with_hook`]: tests run a closure at every point (e.g. panic to stop the
//!   coordinator mid-protocol and inspect the shards).
//!
//! When disabled, a point is one branch on a `None`.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The environment variable that arms a crash point.
pub const FAULT_ENV: &str = "OROCHI_2PC_FAULT";

/// The named steps, in protocol order. The decision INSERT and the coordinator's COMMIT
/// go out in one message once every PREPARE answered, so `after_prepare` and
/// `before_decision` are the same moment, and so are `after_decision` and
/// `after_coordinator_commit` (both names still arm a crash there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// Nothing sent yet.
    BeforePrepare,
    /// Every participant prepared (and read-only ones committed); nothing sent to the
    /// coordinator yet.
    AfterPrepare,
    /// Just before the decision INSERT and COMMIT are sent to the coordinator.
    BeforeDecision,
    /// The decision INSERT and the coordinator's COMMIT answered: the decision is durable.
    AfterDecision,
    /// The coordinator committed: the commit point is behind us.
    AfterCoordinatorCommit,
    /// Just before COMMIT PREPARED is sent to the others.
    BeforeCommitPrepared,
    /// Every COMMIT PREPARED answered; the client has not been told yet.
    AfterCommitPrepared,
    /// A prepare failed; nothing rolled back yet.
    BeforeAbort,
    /// Sweeper: the decision was read; COMMIT/ROLLBACK PREPARED not sent yet.
    SweepAfterDecision,
}

impl FaultPoint {
    pub const ALL: [FaultPoint; 9] = [
        FaultPoint::BeforePrepare,
        FaultPoint::AfterPrepare,
        FaultPoint::BeforeDecision,
        FaultPoint::AfterDecision,
        FaultPoint::AfterCoordinatorCommit,
        FaultPoint::BeforeCommitPrepared,
        FaultPoint::AfterCommitPrepared,
        FaultPoint::BeforeAbort,
        FaultPoint::SweepAfterDecision,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultPoint::BeforePrepare => "before_prepare",
            FaultPoint::AfterPrepare => "after_prepare",
            FaultPoint::BeforeDecision => "before_decision",
            FaultPoint::AfterDecision => "after_decision",
            FaultPoint::AfterCoordinatorCommit => "after_coordinator_commit",
            FaultPoint::BeforeCommitPrepared => "before_commit_prepared",
            FaultPoint::AfterCommitPrepared => "after_commit_prepared",
            FaultPoint::BeforeAbort => "before_abort",
            FaultPoint::SweepAfterDecision => "sweep_after_decision",
        }
    }
}

impl fmt::Display for FaultPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FaultPoint::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = FaultPoint::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown fault point {s:?} (one of {})", names.join(", "))
            })
    }
}

type Hook = Arc<dyn Fn(FaultPoint) + Send + Sync>;

enum Armed {
    /// Abort the process the `remaining`-th time `point` is reached.
    Abort {
        point: FaultPoint,
        remaining: AtomicU64,
    },
    Hook(Hook),
}

/// The fault points of one coordinator; cheap to clone.
#[derive(Clone, Default)]
pub struct Faults {
    armed: Option<Arc<Armed>>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.armed.as_deref() {
            None => f.write_str("Faults(off)"),
            Some(Armed::Abort { point, .. }) => write!(f, "Faults(abort at {point})"),
            Some(Armed::Hook(_)) => f.write_str("Faults(hook)"),
        }
    }
}

/// Parses `<point>` or `<point>:<n>` (n ≥ 1).
pub fn parse_spec(spec: &str) -> Result<(FaultPoint, u64), String> {
    let (name, nth) = match spec.split_once(':') {
        Some((name, n)) => {
            let n: u64 =
                n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!("bad occurrence {n:?} in {spec:?}: want a number ≥ 1")
                })?;
            (name, n)
        }
        None => (spec, 1),
    };
    Ok((name.trim().parse()?, nth))
}

impl Faults {
    /// No fault points armed.
    pub fn off() -> Self {
        Faults::default()
    }

    /// Armed from `OROCHI_2PC_FAULT` (read once per process); off when it is unset. A bad
    /// value is logged and ignored.
    pub fn from_env() -> Self {
        static SPEC: OnceLock<Option<(FaultPoint, u64)>> = OnceLock::new();
        let spec = SPEC.get_or_init(|| {
            let raw = std::env::var(FAULT_ENV).ok()?;
            match parse_spec(&raw) {
                Ok(s) => {
                    tracing::warn!(point = %s.0, occurrence = s.1, "{FAULT_ENV} is set: the process will abort at this two-phase commit step");
                    Some(s)
                }
                Err(e) => {
                    tracing::error!("{FAULT_ENV} ignored: {e}");
                    None
                }
            }
        });
        match spec {
            Some((point, n)) => Self::abort_at(*point, *n),
            None => Self::off(),
        }
    }

    /// Aborts the process the `nth` time `point` is reached.
    pub fn abort_at(point: FaultPoint, nth: u64) -> Self {
        Faults {
            armed: Some(Arc::new(Armed::Abort {
                point,
                remaining: AtomicU64::new(nth.max(1)),
            })),
        }
    }

    /// Runs `hook` at every point (tests).
    pub fn with_hook(hook: impl Fn(FaultPoint) + Send + Sync + 'static) -> Self {
        Faults {
            armed: Some(Arc::new(Armed::Hook(Arc::new(hook)))),
        }
    }

    pub fn is_armed(&self) -> bool {
        self.armed.is_some()
    }

    /// A fault point; free when nothing is armed.
    #[inline]
    pub fn hit(&self, point: FaultPoint) {
        if let Some(armed) = &self.armed {
            armed.hit(point);
        }
    }
}

impl Armed {
    #[cold]
    fn hit(&self, at: FaultPoint) {
        match self {
            Armed::Abort { point, remaining } => {
                if *point == at && remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
                    eprintln!("{FAULT_ENV}: aborting the process at {at}");
                    std::process::abort();
                }
            }
            Armed::Hook(hook) => hook(at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn names_round_trip() {
        for p in FaultPoint::ALL {
            assert_eq!(p.as_str().parse::<FaultPoint>(), Ok(p));
        }
        assert!("after_everything".parse::<FaultPoint>().is_err());
    }

    #[test]
    fn spec_with_occurrence() {
        assert_eq!(
            parse_spec("after_decision"),
            Ok((FaultPoint::AfterDecision, 1))
        );
        assert_eq!(
            parse_spec("before_prepare:3"),
            Ok((FaultPoint::BeforePrepare, 3))
        );
        assert!(parse_spec("before_prepare:0").is_err());
        assert!(parse_spec("before_prepare:x").is_err());
        assert!(parse_spec("nope:2").is_err());
    }

    #[test]
    fn hook_sees_every_point_and_off_sees_none() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let f = Faults::with_hook(move |p| s.lock().unwrap().push(p));
        f.hit(FaultPoint::BeforePrepare);
        f.hit(FaultPoint::AfterPrepare);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![FaultPoint::BeforePrepare, FaultPoint::AfterPrepare]
        );
        let off = Faults::off();
        assert!(!off.is_armed());
        off.hit(FaultPoint::BeforePrepare);
    }

    /// The real thing, in a child process: the armed point aborts (SIGABRT), the points
    /// before it do not.
    #[cfg(unix)]
    #[test]
    fn env_var_aborts_the_process_at_its_point() {
        use std::os::unix::process::ExitStatusExt;
        const CHILD: &str = "OROCHI_2PC_FAULT_TEST_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let f = Faults::from_env();
            f.hit(FaultPoint::BeforePrepare);
            f.hit(FaultPoint::AfterDecision);
            eprintln!("survived");
            std::process::exit(0);
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "faults::tests::env_var_aborts_the_process_at_its_point",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(FAULT_ENV, "after_decision")
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(6), "{:?} {stderr}", out.status);
        assert!(
            stderr.contains("aborting the process at after_decision"),
            "{stderr}"
        );
        assert!(!stderr.contains("survived"), "{stderr}");
    }

    #[test]
    fn abort_point_counts_only_its_own_point() {
        // Armed for the 3rd hit of after_decision; other points and the first two hits
        // must not abort (the test process would die if they did).
        let f = Faults::abort_at(FaultPoint::AfterDecision, 3);
        f.hit(FaultPoint::BeforeDecision);
        f.hit(FaultPoint::AfterDecision);
        f.hit(FaultPoint::AfterDecision);
        match f.armed.as_deref() {
            Some(Armed::Abort { remaining, .. }) => assert_eq!(remaining.load(Ordering::SeqCst), 1),
            _ => panic!("not armed"),
        }
    }
}
