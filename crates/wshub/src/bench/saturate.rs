//! `wshub bench saturate`: the fan-out of `fanout`, with the rate raised step by step (times
//! `--step`) until a step loses messages, passes the p99 limit, gets connections closed, or the
//! publishers cannot offer the rate; reports the highest rate held and every step.

use super::fanout::{Context, REACHED};
use super::procfs::{Monitor, Usage};
use super::progress::Progress;
use super::report::{GeneratorFigures, Latency, Report, SaturateFigures, StepFigures, count, round};
use super::traffic::{Measured, Spec, Traffic};
use crate::args::SaturateArgs;
use anyhow::Result;

pub async fn run(args: SaturateArgs, progress: &mut Progress) -> Result<Report> {
    let spec = Spec::from_args(&args.server, &args.traffic, args.subscribers as usize)?;
    let monitor = Monitor::new(args.server.server_pid)?;
    let baseline = monitor.sample()?;
    let mut traffic = Traffic::start(&spec, progress).await?;
    let climbed = climb(&args, &mut traffic, &monitor, progress).await;
    let closes = traffic.closes();
    let report = climbed.map(|climb| {
        let context = Context {
            scenario: "saturate",
            spec: &spec,
            traffic: &traffic,
            baseline: &baseline,
            closes,
        };
        let mut report = context.report(&climb.shown);
        // Whether the generator was the limit matters where the climb stopped.
        if let Some(usage) = &climb.failed_usage {
            report.generator = GeneratorFigures::of(usage);
        }
        report.saturate = Some(SaturateFigures {
            steps: climb.steps,
            max_rate_held: climb.max_rate_held,
            stopped_because: climb.stopped_because,
        });
        report
    });
    traffic.stop().await;
    report
}

/// The steps of a climb.
struct Climb {
    steps: Vec<StepFigures>,
    /// The step the top-level figures come from: the highest held, or the first if none was.
    shown: Measured,
    max_rate_held: Option<f64>,
    /// What the processes used in the step that failed, if one did.
    failed_usage: Option<Usage>,
    stopped_because: String,
}

async fn climb(
    args: &SaturateArgs,
    traffic: &mut Traffic,
    monitor: &Monitor,
    progress: &mut Progress,
) -> Result<Climb> {
    let limit_ms = args.p99_limit.as_secs_f64() * 1000.0;
    let mut rate = args.start_rate.min(args.max_rate);
    let mut steps = Vec::new();
    let mut best: Option<Measured> = None;
    let mut closed_before = traffic.closes().0;
    loop {
        let measured = traffic
            .measure(rate, args.traffic.warmup, args.step_duration, monitor, progress)
            .await?;
        let p99 = Latency::of(&measured.latencies).map(|latency| latency.p99);
        let closed = traffic.closes().0;
        let failure = judge(&measured, p99, limit_ms, closed - closed_before);
        closed_before = closed;
        let generator = GeneratorFigures::of(&measured.usage);
        steps.push(StepFigures {
            rate: round(rate, 1),
            sent: measured.sent,
            delivered_per_s: round(measured.delivered_per_s(), 1),
            loss: measured.loss(),
            p99,
            generator_cpu_percent: generator.cpu_percent,
            held: failure.is_none(),
        });
        if let Some(reason) = failure {
            let stopped_because = if generator.bottleneck {
                format!("{reason}; the generator was at its limit, so this may be its ceiling, not the server's")
            } else {
                reason
            };
            let max_rate_held = best.as_ref().map(|best| best.rate);
            let failed_usage = Some(measured.usage);
            return Ok(Climb {
                steps,
                shown: best.unwrap_or(measured),
                max_rate_held,
                failed_usage,
                stopped_because,
            });
        }
        progress.note(&format!(
            "{}/s held: p99 {} ms, generator CPU {:.0} %",
            count(rate.round() as u64),
            p99.map_or_else(|| "-".to_owned(), |p99| p99.to_string()),
            generator.cpu_percent
        ));
        if rate >= args.max_rate {
            return Ok(Climb {
                steps,
                max_rate_held: Some(measured.rate),
                shown: measured,
                failed_usage: None,
                stopped_because: format!("reached --max-rate {}/s", count(args.max_rate.round() as u64)),
            });
        }
        best = Some(measured);
        rate = (rate * args.step).min(args.max_rate);
    }
}

/// Why a step failed, if it did.
fn judge(measured: &Measured, p99: Option<f64>, limit_ms: f64, newly_closed: u64) -> Option<String> {
    let rate = count(measured.rate.round() as u64);
    if newly_closed > 0 {
        return Some(format!(
            "the server closed {} connections at {rate}/s",
            count(newly_closed)
        ));
    }
    let loss = measured.loss();
    if loss > 0 {
        return Some(format!(
            "{} of {} messages lost at {rate}/s",
            count(loss),
            count(measured.expected)
        ));
    }
    if let Some(p99) = p99.filter(|&p99| p99 > limit_ms) {
        return Some(format!(
            "p99 latency {p99} ms above the {limit_ms} ms limit at {rate}/s"
        ));
    }
    if measured.sent_per_s() < REACHED * measured.rate {
        return Some(format!(
            "the publishers reached only {}/s of the offered {rate}/s",
            count(measured.sent_per_s().round() as u64)
        ));
    }
    None
}
