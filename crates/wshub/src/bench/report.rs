//! The figures of a run: one JSON object for machines (`--json`, fields fixed by the comparison
//! scripts: those that do not apply are `null`), or a table for people.

use super::procfs::Usage;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write;

/// The generator is the bottleneck past this share of the CPUs it may use.
const GENERATOR_CEILING: f64 = 0.9;

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub target: &'static str,
    pub url: String,
    pub subscribers: Option<u64>,
    pub publishers: Option<u64>,
    /// Messages per second asked for, all publishers together.
    pub offered_rate: Option<f64>,
    pub duration_s: f64,
    /// Messages sent inside the measuring window.
    pub sent: Option<u64>,
    /// Messages received inside the window, each receiver's counted once per message.
    pub delivered: Option<u64>,
    pub delivered_per_s: Option<f64>,
    /// `sent` × receivers.
    pub expected: Option<u64>,
    pub loss: Option<u64>,
    pub loss_ratio: Option<f64>,
    pub duplicates: Option<u64>,
    pub out_of_order: Option<u64>,
    pub latency_ms: Option<Latency>,
    pub connect_per_s: Option<f64>,
    pub server: Option<ServerFigures>,
    pub generator: GeneratorFigures,
    /// Connections the server closed (or that dropped) while meant to stay open.
    pub closed_connections: u64,
    /// Connections opened (idle, connect).
    pub connections: Option<u64>,
    /// `ws` or `http` (wshub fanout and saturate).
    pub publish_via: Option<&'static str>,
    pub payload_bytes: Option<u64>,
    /// Publishes the hub acknowledged (wshub).
    pub acked: Option<u64>,
    /// Publishes the hub refused (wshub), and the first refusal in its words.
    pub publish_refused: Option<u64>,
    pub publish_refusal: Option<String>,
    /// Connections that could not be opened (connect), and the first reason.
    pub failed: Option<u64>,
    pub failure: Option<String>,
    /// Close codes of `closed_connections`, most frequent first.
    pub closes: Vec<String>,
    /// Local addresses the connections came from (0: the system's choice).
    pub source_addresses: usize,
    /// Things to know when reading the figures.
    pub notes: Vec<String>,
    #[serde(flatten)]
    pub saturate: Option<SaturateFigures>,
}

impl Report {
    /// A report of `scenario` with nothing measured yet: each scenario sets what it measures
    /// (`Report { delivered: …, ..Report::new(…) }`) and the rest stays empty (`null`).
    pub fn new(
        scenario: &'static str,
        target: &'static str,
        url: String,
        duration_s: f64,
        generator: GeneratorFigures,
    ) -> Report {
        Report {
            scenario,
            target,
            url,
            subscribers: None,
            publishers: None,
            offered_rate: None,
            duration_s,
            sent: None,
            delivered: None,
            delivered_per_s: None,
            expected: None,
            loss: None,
            loss_ratio: None,
            duplicates: None,
            out_of_order: None,
            latency_ms: None,
            connect_per_s: None,
            server: None,
            generator,
            closed_connections: 0,
            connections: None,
            publish_via: None,
            payload_bytes: None,
            acked: None,
            publish_refused: None,
            publish_refusal: None,
            failed: None,
            failure: None,
            closes: Vec::new(),
            source_addresses: 0,
            notes: Vec::new(),
            saturate: None,
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// The percentiles of a histogram of microseconds; `None` when it is empty.
    pub fn of(micros: &Histogram<u64>) -> Option<Latency> {
        if micros.is_empty() {
            return None;
        }
        // Whole microseconds: three decimals of a millisecond, exactly.
        let ms = |value: u64| value as f64 / 1000.0;
        Some(Latency {
            p50: ms(micros.value_at_quantile(0.5)),
            p90: ms(micros.value_at_quantile(0.9)),
            p99: ms(micros.value_at_quantile(0.99)),
            p999: ms(micros.value_at_quantile(0.999)),
            max: ms(micros.max()),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerFigures {
    pub pid: u32,
    pub cpu_s: f64,
    /// Of one CPU: 200 means two CPUs busy.
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    /// RSS growth from before the connections were opened, per connection.
    pub rss_per_connection_bytes: Option<f64>,
    /// Idle: CPU microseconds per second per connection.
    pub cpu_us_per_s_per_connection: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GeneratorFigures {
    /// Of one CPU: 200 means two CPUs busy.
    pub cpu_percent: f64,
    /// CPUs the generator may run on.
    pub cpus: usize,
    /// The generator used at least 90 % of them: it, not the server, set the pace.
    pub bottleneck: bool,
    pub note: String,
}

impl GeneratorFigures {
    pub fn of(usage: &Usage) -> GeneratorFigures {
        let wall = usage.wall.as_secs_f64().max(1e-9);
        let cpu_percent = round(usage.generator_cpu_s / wall * 100.0, 1);
        let capacity = usage.cpus as f64 * 100.0;
        let bottleneck = cpu_percent >= GENERATOR_CEILING * capacity;
        let cpus = plural(usage.cpus as u64, "CPU", "CPUs");
        let note = if bottleneck {
            format!(
                "the generator used {cpu_percent:.0} % of its {cpus}: it, not the server, limited this run \
                 (give it more CPUs with taskset, or lower the load)"
            )
        } else {
            format!("the generator used {cpu_percent:.0} % of its {cpus}: not the bottleneck")
        };
        GeneratorFigures {
            cpu_percent,
            cpus: usage.cpus,
            bottleneck,
            note,
        }
    }
}

impl ServerFigures {
    /// The server's use in `usage`; `rss_before` is its RSS before the connections were opened.
    pub fn of(usage: &Usage, rss_before: Option<u64>, connections: u64) -> Option<ServerFigures> {
        let (pid, cpu_s, rss_bytes) = usage.server?;
        let wall = usage.wall.as_secs_f64().max(1e-9);
        let rss_per_connection_bytes = match rss_before {
            Some(before) if connections > 0 => Some(round((rss_bytes as f64 - before as f64) / connections as f64, 0)),
            _ => None,
        };
        Some(ServerFigures {
            pid,
            cpu_s: round(cpu_s, 2),
            cpu_percent: round(cpu_s / wall * 100.0, 1),
            rss_bytes,
            rss_per_connection_bytes,
            cpu_us_per_s_per_connection: None,
        })
    }
}

/// One step of `saturate`.
#[derive(Debug, Clone, Serialize)]
pub struct StepFigures {
    pub rate: f64,
    pub sent: u64,
    pub delivered_per_s: f64,
    pub loss: u64,
    /// Milliseconds; `null` when nothing was delivered.
    pub p99: Option<f64>,
    pub generator_cpu_percent: f64,
    pub held: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SaturateFigures {
    pub steps: Vec<StepFigures>,
    /// The highest rate with no loss and p99 within the limit; `null` if even the first failed.
    pub max_rate_held: Option<f64>,
    pub stopped_because: String,
}

/// `value` rounded to `decimals` places.
pub fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A rate such as `998,400/s` or `0.5/s`.
fn per_second(rate: f64) -> String {
    if rate >= 100.0 || rate == 0.0 {
        format!("{}/s", count(rate.round() as u64))
    } else {
        format!("{rate:.1}/s")
    }
}

/// `12.3 MiB`.
pub fn bytes(n: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut value = n;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(n), if n == 1 { one } else { many })
}

/// The report as a table for people.
pub fn human(report: &Report) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<20} {value}");
    };
    let mut shape = Vec::new();
    if let Some(subscribers) = report.subscribers {
        shape.push(plural(subscribers, "subscriber", "subscribers"));
    }
    if let Some(connections) = report.connections {
        shape.push(plural(connections, "connection", "connections"));
    }
    if let Some(publishers) = report.publishers {
        let via = report.publish_via.map(|via| format!(" over {via}")).unwrap_or_default();
        shape.push(format!("{}{via}", plural(publishers, "publisher", "publishers")));
    }
    if let Some(rate) = report.offered_rate {
        shape.push(format!("{} offered", per_second(rate)));
    }
    if let Some(size) = report.payload_bytes {
        shape.push(format!("{size}-byte payloads"));
    }
    shape.push(format!("{} s", round(report.duration_s, 2)));
    let header = format!(
        "{} against {} at {} ({})\n",
        report.scenario,
        report.target,
        report.url,
        shape.join(", ")
    );
    let seconds = report.duration_s.max(1e-9);
    if let Some(sent) = report.sent {
        line(
            "sent",
            format!("{} ({})", count(sent), per_second(sent as f64 / seconds)),
        );
    }
    if let Some(acked) = report.acked {
        line(
            "acknowledged",
            format!("{} ({})", count(acked), per_second(acked as f64 / seconds)),
        );
    }
    if let (Some(refused), Some(reason)) = (report.publish_refused, &report.publish_refusal) {
        line("refused publishes", format!("{} (first: {reason})", count(refused)));
    }
    if let (Some(delivered), Some(rate)) = (report.delivered, report.delivered_per_s) {
        line("delivered", format!("{} ({})", count(delivered), per_second(rate)));
    }
    if let Some(expected) = report.expected {
        line("expected", count(expected));
    }
    if let Some(loss) = report.loss {
        let ratio = report
            .loss_ratio
            .map(|ratio| format!(" ({:.3} %)", ratio * 100.0))
            .unwrap_or_default();
        line("loss", format!("{}{ratio}", count(loss)));
    }
    if let Some(duplicates) = report.duplicates {
        line("duplicates", count(duplicates));
    }
    if let Some(out_of_order) = report.out_of_order {
        line("out of order", count(out_of_order));
    }
    if let Some(latency) = &report.latency_ms {
        line(
            "latency (ms)",
            format!(
                "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                latency.p50, latency.p90, latency.p99, latency.p999, latency.max
            ),
        );
    }
    if let Some(rate) = report.connect_per_s {
        line("connect rate", per_second(rate));
    }
    if let Some(failed) = report.failed {
        let first = report
            .failure
            .as_ref()
            .map(|reason| format!(" (first: {reason})"))
            .unwrap_or_default();
        line("failed connections", format!("{}{first}", count(failed)));
    }
    if let Some(server) = &report.server {
        let mut figures = format!(
            "CPU {:.2} s ({:.1} %), RSS {}",
            server.cpu_s,
            server.cpu_percent,
            bytes(server.rss_bytes as f64)
        );
        if let Some(per) = server.rss_per_connection_bytes {
            let _ = write!(figures, " ({} per connection)", bytes(per));
        }
        if let Some(cpu) = server.cpu_us_per_s_per_connection {
            let _ = write!(figures, ", {cpu:.2} µs CPU per second per connection");
        }
        line(&format!("server (pid {})", server.pid), figures);
    }
    line("generator", report.generator.note.clone());
    let closes = if report.closes.is_empty() {
        String::new()
    } else {
        format!(" ({})", report.closes.join(", "))
    };
    line(
        "closed connections",
        format!("{}{closes}", count(report.closed_connections)),
    );
    if let Some(saturate) = &report.saturate {
        let held = saturate.max_rate_held.map_or_else(|| "none".to_owned(), per_second);
        line(
            "highest rate held",
            format!("{held} (stopped: {})", saturate.stopped_because),
        );
        for step in &saturate.steps {
            line(
                &format!("  step {}", per_second(step.rate)),
                format!(
                    "delivered {}, loss {}, p99 {} ms, generator CPU {:.0} %{}",
                    per_second(step.delivered_per_s),
                    count(step.loss),
                    step.p99.map_or_else(|| "-".to_owned(), |p99| p99.to_string()),
                    step.generator_cpu_percent,
                    if step.held { "" } else { "  ← failed" }
                ),
            );
        }
    }
    for note in &report.notes {
        line("note", note.clone());
    }
    format!("{header}{out}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(per_second(998_400.4), "998,400/s");
        assert_eq!(per_second(0.5), "0.5/s");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(10.0 * 1024.0 * 1024.0), "10.0 MiB");
    }

    #[test]
    fn latency_comes_in_milliseconds() {
        let mut histogram = super::super::stats::histogram();
        for micros in 1..=1000 {
            histogram.record(micros).expect("in range");
        }
        let latency = Latency::of(&histogram).expect("samples");
        assert!((latency.p50 - 0.5).abs() < 0.01, "{latency:?}");
        assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
        assert!((latency.max - 1.0).abs() < 0.01, "{latency:?}");
        assert!(Latency::of(&super::super::stats::histogram()).is_none());
    }

    #[test]
    fn the_generator_is_the_bottleneck_near_its_cpus() {
        let usage = |cpu: f64, cpus: usize| Usage {
            wall: Duration::from_secs(10),
            server: None,
            generator_cpu_s: cpu,
            cpus,
        };
        let busy = GeneratorFigures::of(&usage(9.5, 1));
        assert!(busy.bottleneck && busy.note.contains("limited this run"), "{busy:?}");
        let half = GeneratorFigures::of(&usage(9.5, 2));
        assert!(!half.bottleneck, "{half:?}");
        assert_eq!(half.cpu_percent, 95.0);
    }
}
