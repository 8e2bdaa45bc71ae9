//! Timing samples and the table the timing suite prints.

use std::time::Duration;

/// Samples of one measurement.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    pub name: String,
    pub target: String,
    /// Upstream MetalLB / frr-k8s's figure for the same path, where one is known (printed
    /// under the row).
    pub upstream: Option<String>,
    values: Vec<Duration>,
}

impl Samples {
    pub fn new(name: &str, target: &str) -> Self {
        Samples {
            name: name.into(),
            target: target.into(),
            upstream: None,
            values: Vec::new(),
        }
    }

    /// What upstream takes for the same path (see `../shared/reference/`), for the table.
    pub fn upstream(mut self, anchor: &str) -> Self {
        self.upstream = Some(anchor.into());
        self
    }

    pub fn push(&mut self, d: Duration) {
        self.values.push(d);
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.values.clone();
        v.sort();
        v
    }

    /// Nearest-rank percentile (0..=100).
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let v = self.sorted();
        if v.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        Some(v[rank.clamp(1, v.len()) - 1])
    }

    pub fn median(&self) -> Option<Duration> {
        self.percentile(50.0)
    }

    pub fn worst(&self) -> Option<Duration> {
        self.values.iter().max().copied()
    }

    pub fn best(&self) -> Option<Duration> {
        self.values.iter().min().copied()
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// A printable table of measurements.
pub fn table(rows: &[Samples]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<58} {:>4} {:>7} {:>7} {:>7} {:>7}  {}\n",
        "measurement", "n", "min ms", "p50 ms", "p90 ms", "max ms", "target"
    ));
    for r in rows {
        out.push_str(&format!(
            "{:<58} {:>4} {:>7} {:>7} {:>7} {:>7}  {}\n",
            r.name,
            r.len(),
            ms(r.best()),
            ms(r.median()),
            ms(r.percentile(90.0)),
            ms(r.worst()),
            r.target
        ));
        if let Some(u) = &r.upstream {
            out.push_str(&format!("    upstream: {u}\n"));
        }
    }
    out
}

/// A process's resident memory and CPU time so far, from `/proc` (CPU in clock ticks of
/// 10 ms: `CLK_TCK` is 100 on Linux).
pub fn proc_usage(pid: u32) -> Option<(u64, Duration)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the command name (which may hold spaces) start at the state (field 3)
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((rss_kib, Duration::from_millis(ticks * 10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s = Samples::new("x", "");
        for i in 1..=20 {
            s.push(Duration::from_millis(i * 10));
        }
        assert_eq!(s.median(), Some(Duration::from_millis(100)));
        assert_eq!(s.worst(), Some(Duration::from_millis(200)));
        assert_eq!(s.percentile(90.0), Some(Duration::from_millis(180)));
        assert!(table(&[s]).contains("200"));
    }

    #[test]
    fn an_upstream_anchor_is_printed_under_its_row_only() {
        let mut ours = Samples::new("ours", "< 1 s").upstream("~6 s upstream");
        ours.push(Duration::from_millis(200));
        let mut other = Samples::new("other", "-");
        other.push(Duration::from_millis(10));
        let t = table(&[ours, other]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[1].starts_with("ours"), "{t}");
        assert_eq!(lines[2], "    upstream: ~6 s upstream");
        assert!(lines[3].starts_with("other"), "{t}");
    }
}
