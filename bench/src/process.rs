//! This process's CPU time and memory, read from `/proc/self`.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, fixed at 100 on Linux
/// whatever the kernel's internal tick rate).
const USER_HZ: u64 = 100;

/// User plus system CPU time this process has used so far (all threads).
pub fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the ')'.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / USER_HZ)
}

/// Turns a `perf record --control fifo:PATH -D -1` on (`true`) or off around a measured
/// phase, when `FEDIBRIDGE_BENCH_PERF_CTL` names that fifo; otherwise does nothing. This way
/// a profile holds the measured phase only, not the key generation and signing before it.
pub fn profile_phase(on: bool) {
    if let Some(fifo) = std::env::var_os("FEDIBRIDGE_BENCH_PERF_CTL") {
        let command: &[u8] = if on { b"enable\n" } else { b"disable\n" };
        if let Err(error) = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .and_then(|mut f| std::io::Write::write_all(&mut f, command))
        {
            eprintln!("perf control fifo {}: {error}", fifo.to_string_lossy());
        }
    }
}

/// A `kB` field of `/proc/self/status` (e.g. `VmRSS`, `VmHWM`), in bytes.
pub fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(status_bytes("VmRSS") > 0);
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {}
        assert!(cpu_time() > Duration::ZERO);
    }
}
