//! What Linux says about a process in `/proc`: CPU time used (user + system, all threads) and
//! resident memory, for the server (`--server-pid`) and for the generator itself; and how many
//! CPUs the generator may run on (`taskset` included), to tell when it is the bottleneck.

use anyhow::{Context, Result, bail};
use std::time::{Duration, Instant};

/// Clock ticks per second in `/proc/PID/stat` (`USER_HZ`, 100 on every Linux architecture the
/// hub builds for).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time and memory of a process at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// User + system time, in clock ticks.
    cpu_ticks: u64,
    pub rss_bytes: u64,
}

impl Sample {
    /// CPU seconds used between `earlier` and this sample.
    pub fn cpu_seconds_since(&self, earlier: &Sample) -> f64 {
        self.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64 / TICKS_PER_SECOND
    }

    /// Wall time between `earlier` and this sample.
    pub fn wall_since(&self, earlier: &Sample) -> Duration {
        self.at.saturating_duration_since(earlier.at)
    }
}

/// A process whose CPU and memory can be read.
#[derive(Debug, Clone, Copy)]
pub struct Process {
    pid: Option<u32>,
}

impl Process {
    /// This process (the generator).
    pub fn current() -> Process {
        Process { pid: None }
    }

    /// Process `pid`, which must exist now.
    pub fn other(pid: u32) -> Result<Process> {
        let process = Process { pid: Some(pid) };
        process
            .sample()
            .with_context(|| format!("cannot read process {pid} (--server-pid) in /proc"))?;
        Ok(process)
    }

    pub fn pid(&self) -> u32 {
        self.pid.unwrap_or_else(std::process::id)
    }

    pub fn sample(&self) -> Result<Sample> {
        let dir = match self.pid {
            Some(pid) => format!("/proc/{pid}"),
            None => "/proc/self".to_owned(),
        };
        let at = Instant::now();
        let stat = std::fs::read_to_string(format!("{dir}/stat")).with_context(|| format!("cannot read {dir}/stat"))?;
        let status =
            std::fs::read_to_string(format!("{dir}/status")).with_context(|| format!("cannot read {dir}/status"))?;
        Ok(Sample {
            at,
            cpu_ticks: cpu_ticks(&stat).with_context(|| format!("unexpected {dir}/stat"))?,
            rss_bytes: status_kib(&status, "VmRSS:").with_context(|| format!("no VmRSS in {dir}/status"))? * 1024,
        })
    }
}

/// The processes a scenario watches: the server (when its pid was given) and the generator.
#[derive(Debug, Clone, Copy)]
pub struct Monitor {
    server: Option<Process>,
    generator: Process,
    /// CPUs the generator may use.
    pub cpus: usize,
}

/// Both processes at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub server: Option<Sample>,
    pub generator: Sample,
}

/// What the processes used between two snapshots.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub wall: Duration,
    /// Server: pid, CPU seconds, RSS at the end.
    pub server: Option<(u32, f64, u64)>,
    pub generator_cpu_s: f64,
    pub cpus: usize,
}

impl Monitor {
    pub fn new(server_pid: Option<u32>) -> Result<Monitor> {
        Ok(Monitor {
            server: server_pid.map(Process::other).transpose()?,
            generator: Process::current(),
            cpus: allowed_cpus(),
        })
    }

    pub fn sample(&self) -> Result<Snapshot> {
        Ok(Snapshot {
            server: self
                .server
                .map(|server| {
                    server
                        .sample()
                        .with_context(|| format!("the server (pid {}) is gone", server.pid()))
                })
                .transpose()?,
            generator: self.generator.sample()?,
        })
    }

    /// What was used from `earlier` to `later`.
    pub fn usage(&self, earlier: &Snapshot, later: &Snapshot) -> Usage {
        let server = match (self.server, earlier.server, later.server) {
            (Some(process), Some(before), Some(after)) => {
                Some((process.pid(), after.cpu_seconds_since(&before), after.rss_bytes))
            }
            _ => None,
        };
        Usage {
            wall: later.generator.wall_since(&earlier.generator),
            server,
            generator_cpu_s: later.generator.cpu_seconds_since(&earlier.generator),
            cpus: self.cpus,
        }
    }
}

/// utime + stime: fields 14 and 15 of `/proc/PID/stat`, counted after the command name, which
/// is in parentheses and may itself hold spaces and parentheses.
fn cpu_ticks(stat: &str) -> Result<u64> {
    let Some(after_name) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
        bail!("no command name");
    };
    // Field 3 (state) is the first after the name.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| -> Result<u64> {
        let text = fields.get(number - 3).context("too few fields")?;
        text.parse().with_context(|| format!("field {number} is {text:?}"))
    };
    Ok(field(14)? + field(15)?)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find_map(|line| line.strip_prefix(key))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

/// How many CPUs this process may run on: `Cpus_allowed_list` of `/proc/self/status` (what
/// `taskset` sets), else what the standard library sees.
pub fn allowed_cpus() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
                .and_then(count_cpu_list)
        })
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
}

/// Counts the CPUs of a list such as `0-3,8,10-11`.
fn count_cpu_list(list: &str) -> Option<usize> {
    let mut count = 0;
    for part in list.trim().split(',').filter(|part| !part.is_empty()) {
        count += match part.split_once('-') {
            Some((first, last)) => {
                let (first, last): (usize, usize) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
                last.checked_sub(first)? + 1
            }
            None => {
                part.trim().parse::<usize>().ok()?;
                1
            }
        };
    }
    (count > 0).then_some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 100 1000 200";
        assert_eq!(cpu_ticks(stat).expect("fields"), 325);
        assert!(cpu_ticks("1234 (x) S 1").is_err());
    }

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(count_cpu_list("0-1\n"), Some(2));
        assert_eq!(count_cpu_list("1"), Some(1));
        assert_eq!(count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(count_cpu_list(""), None);
        assert_eq!(count_cpu_list("3-1"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let process = Process::current();
        let sample = process.sample().expect("/proc/self");
        assert!(sample.rss_bytes > 0);
        assert!(allowed_cpus() >= 1);
        assert!(Process::other(u32::MAX).is_err());
    }
}
