//! Progress of long phases: bars (rows, bytes, rate, ETA per table and overall) on a
//! terminal, one plain line per step — and a progress line at most every 10 s —
//! otherwise, so logs of a CI job or a systemd unit stay readable.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Rows done and expected of one table.
#[derive(Debug, Clone, Default)]
pub struct Item {
    pub done: u64,
    pub total: u64,
    pub bytes_total: u64,
}

/// Bytes done, in proportion to rows done.
fn bytes_of(i: &Item) -> u64 {
    (i.bytes_total * i.done.min(i.total))
        .checked_div(i.total)
        .unwrap_or(0)
}

pub struct Reporter {
    multi: Option<MultiProgress>,
    bars: BTreeMap<String, ProgressBar>,
    overall: Option<ProgressBar>,
    started: Instant,
    last_line: Option<Instant>,
}

impl Default for Reporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter {
    pub fn new() -> Reporter {
        let term = std::io::stderr().is_terminal();
        Reporter {
            multi: term.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: BTreeMap::new(),
            overall: None,
            started: Instant::now(),
            last_line: None,
        }
    }

    /// One line naming a step (printed above the bars on a terminal).
    pub fn step(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }

    fn style() -> ProgressStyle {
        ProgressStyle::with_template(
            "{prefix:>28} [{bar:30}] {human_pos}/{human_len} rows {msg} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
    }

    /// New figures for every table.
    pub fn update(&mut self, items: &BTreeMap<String, Item>) {
        let done: u64 = items
            .values()
            .map(|i| i.done.min(i.total.max(i.done)))
            .sum();
        let total: u64 = items.values().map(|i| i.total.max(i.done)).sum();
        let bytes: u64 = items.values().map(bytes_of).sum();
        match &self.multi {
            Some(m) => {
                for (name, it) in items {
                    let bar = self.bars.entry(name.clone()).or_insert_with(|| {
                        let b = m.add(ProgressBar::new(it.total));
                        b.set_style(Self::style());
                        b.set_prefix(name.clone());
                        b
                    });
                    bar.set_length(it.total.max(it.done));
                    bar.set_position(it.done);
                    let b = bytes_of(it);
                    bar.set_message(crate::plan::human_bytes(b as i64));
                }
                let o = self.overall.get_or_insert_with(|| {
                    let b = m.add(ProgressBar::new(total));
                    b.set_style(Self::style());
                    b.set_prefix("overall");
                    b
                });
                o.set_length(total);
                o.set_position(done);
                o.set_message(crate::plan::human_bytes(bytes as i64));
            }
            None => {
                if self
                    .last_line
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
                {
                    return;
                }
                self.last_line = Some(Instant::now());
                eprintln!("{}", line(done, total, bytes, self.started.elapsed()));
            }
        }
    }

    pub fn finish(&mut self) {
        for b in self.bars.values() {
            b.finish();
        }
        if let Some(o) = &self.overall {
            o.finish();
        }
    }
}

/// "copy: 120000/200000 rows (60%), 12.1 MB, 40000 rows/s, eta 2 s".
pub fn line(done: u64, total: u64, bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    format!("copy: {}", figures(done, total, bytes, done as f64 / secs))
}

/// `status`'s lines from two samples `dt` apart, per table then overall: rows, bytes,
/// the rate between the samples and the ETA at that rate.
pub fn rate_lines(
    a: &BTreeMap<String, Item>,
    b: &BTreeMap<String, Item>,
    dt: Duration,
) -> Vec<String> {
    let secs = dt.as_secs_f64().max(0.001);
    let rate = |x: u64, y: u64| y.saturating_sub(x) as f64 / secs;
    let mut out = Vec::new();
    let (mut done, mut total, mut bytes, mut before) = (0, 0, 0, 0);
    for (name, it) in b {
        let was = a.get(name).map_or(it.done, |i| i.done);
        let t = it.total.max(it.done);
        out.push(format!(
            "{name}: {}",
            figures(it.done, t, bytes_of(it), rate(was, it.done))
        ));
        (done, total, bytes, before) = (
            done + it.done,
            total + t,
            bytes + bytes_of(it),
            before + was,
        );
    }
    out.push(format!(
        "overall: {}",
        figures(done, total, bytes, rate(before, done))
    ));
    out
}

fn figures(done: u64, total: u64, bytes: u64, rate: f64) -> String {
    let pct = if total == 0 {
        100.0
    } else {
        100.0 * done.min(total) as f64 / total as f64
    };
    let eta = if rate > 0.0 && total > done {
        format!("{:.0} s", (total - done) as f64 / rate)
    } else {
        "-".into()
    };
    format!(
        "{done}/{total} rows ({pct:.0}%), {}, {rate:.0} rows/s, eta {eta}",
        crate::plan::human_bytes(bytes as i64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_give_the_rate_between_samples_and_the_eta() {
        let item = |done| Item {
            done,
            total: 1000,
            bytes_total: 1000,
        };
        let a = BTreeMap::from([("public.t".to_string(), item(100))]);
        let b = BTreeMap::from([("public.t".to_string(), item(300))]);
        let l = rate_lines(&a, &b, Duration::from_secs(2));
        assert_eq!(l.len(), 2);
        assert!(
            l[0].starts_with("public.t: 300/1000 rows (30%)"),
            "{}",
            l[0]
        );
        assert!(l[0].contains("100 rows/s, eta 7 s"), "{}", l[0]);
        assert!(l[1].starts_with("overall: 300/1000 rows"), "{}", l[1]);
    }
}
