//! What a test or benchmark reads of a process it started, from `/proc`.

/// CPU seconds a process has used (user + system), from `/proc/<pid>/stat`; 0 when the
/// process is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the command name, which is in parentheses and may hold spaces
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = (rest.split_whitespace())
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0 // USER_HZ
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_used_cpu_and_a_missing_one_none() {
        // spin until the clock has ticked (10 ms of CPU), at most 5 s
        let start = std::time::Instant::now();
        while super::cpu_seconds(std::process::id()) == 0.0
            && start.elapsed() < std::time::Duration::from_secs(5)
        {
            std::hint::black_box((0..1000u64).sum::<u64>());
        }
        assert!(super::cpu_seconds(std::process::id()) > 0.0);
        assert_eq!(super::cpu_seconds(u32::MAX), 0.0);
    }
}
