//! CPU time and resident memory of a process, from Linux's /proc (parsing is sans-IO).

use std::time::Duration;

/// Why a process could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The file could not be read (the process is gone, or this is not Linux).
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file did not look as expected.
    #[error("{path}: unexpected format")]
    Format {
        /// The file.
        path: String,
    },
}

/// A process to watch: `/proc/<pid>` (or `/proc/self`).
#[derive(Debug, Clone)]
pub struct Proc {
    dir: String,
    ticks_per_sec: u64,
}

impl Proc {
    /// Another process.
    #[must_use]
    pub fn pid(pid: u32) -> Self {
        Self::at(format!("/proc/{pid}"))
    }

    /// This process.
    #[must_use]
    pub fn this() -> Self {
        Self::at("/proc/self".to_owned())
    }

    fn at(dir: String) -> Self {
        Self {
            dir,
            ticks_per_sec: clock_ticks(),
        }
    }

    /// User + system CPU time so far, all threads including finished ones.
    pub fn cpu(&self) -> Result<Duration, ProcError> {
        let path = format!("{}/stat", self.dir);
        let text = read(&path)?;
        let ticks = parse_stat_ticks(&text).ok_or(ProcError::Format { path })?;
        Ok(Duration::from_secs_f64(
            ticks as f64 / self.ticks_per_sec as f64,
        ))
    }

    /// Resident set size in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Result<u64, ProcError> {
        let path = format!("{}/status", self.dir);
        let text = read(&path)?;
        parse_status_rss_kib(&text).ok_or(ProcError::Format { path })
    }
}

fn read(path: &str) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|source| ProcError::Read {
        path: path.to_owned(),
        source,
    })
}

/// `utime + stime` in clock ticks from the text of `/proc/PID/stat`. The command name (field
/// 2) may hold spaces and parentheses, so fields are counted from the last `)`.
#[must_use]
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
#[must_use]
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// `sysconf(_SC_CLK_TCK)` without `unsafe`: asks `getconf`, else assumes Linux's usual 100.
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 9000 0 12 0 \
                    731 269 0 0 20 0 9 0 12345 1000000 5000 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(1000));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn rss_comes_from_vmrss() {
        let status = "Name:\tcompanion\nVmPeak:\t  900 kB\nVmRSS:\t   51234 kB\nThreads:\t9\n";
        assert_eq!(parse_status_rss_kib(status), Some(51_234));
        assert_eq!(parse_status_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn this_process_is_readable() {
        let me = Proc::this();
        assert!(me.rss_kib().unwrap() > 0);
        me.cpu().unwrap();
        assert!(Proc::pid(u32::MAX).cpu().is_err());
    }
}
