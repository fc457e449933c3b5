//! `wshub bench fanout`: subscribers on one topic, publishers at a fixed rate for a fixed time;
//! what arrived, what was lost, duplicated or reordered, how late, and what it cost the server
//! and the generator.

use super::message::smallest_body;
use super::procfs::{Monitor, Snapshot};
use super::progress::Progress;
use super::publisher::RATE_LIMIT_HINT;
use super::report::{GeneratorFigures, Latency, Report, ServerFigures, count, round};
use super::traffic::{Measured, Spec, Traffic};
use crate::args::{FanoutArgs, TargetKind};
use anyhow::Result;

/// Publishers that reach less than this share of the offered rate get a note.
pub const REACHED: f64 = 0.95;

pub async fn run(args: FanoutArgs, progress: &mut Progress) -> Result<Report> {
    let spec = Spec::from_args(&args.server, &args.traffic, args.subscribers as usize)?;
    let monitor = Monitor::new(args.server.server_pid)?;
    let baseline = monitor.sample()?;
    let mut traffic = Traffic::start(&spec, progress).await?;
    let measured = traffic
        .measure(args.rate, args.traffic.warmup, args.duration, &monitor, progress)
        .await;
    let closes = traffic.closes();
    let context = Context {
        scenario: "fanout",
        spec: &spec,
        traffic: &traffic,
        baseline: &baseline,
        closes,
    };
    let report = measured.map(|measured| context.report(&measured));
    traffic.stop().await;
    report
}

/// What a report of `fanout` (or of a `saturate` step) is made from besides the step itself.
pub struct Context<'a> {
    pub scenario: &'static str,
    pub spec: &'a Spec,
    pub traffic: &'a Traffic,
    /// Before any connection was opened.
    pub baseline: &'a Snapshot,
    /// Connections closed by the server, and their codes.
    pub closes: (u64, Vec<String>),
}

impl Context<'_> {
    pub fn report(&self, measured: &Measured) -> Report {
        let spec = self.spec;
        let wshub = spec.adapter.kind == TargetKind::Wshub;
        let unique = measured.totals.unique();
        let loss = measured.loss();
        let mut notes = Vec::new();
        if measured.sent_per_s() < REACHED * measured.rate {
            notes.push(format!(
                "the publishers reached only {}/s of the offered {}/s",
                count(measured.sent_per_s().round() as u64),
                count(measured.rate.round() as u64)
            ));
        }
        if let Some(refusal) = self.traffic.first_refusal()
            && refusal.starts_with("rate_limited")
        {
            notes.push(RATE_LIMIT_HINT.to_owned());
        }
        let smallest = smallest_body();
        if spec.payload_bytes < smallest {
            notes.push(format!(
                "bodies are at least {smallest} bytes (sequence and send time), more than --payload-bytes"
            ));
        }
        Report {
            scenario: self.scenario,
            target: spec.adapter.name(),
            url: spec.adapter.shown_url.clone(),
            subscribers: Some(spec.subscribers as u64),
            publishers: Some(spec.publishers as u64),
            offered_rate: Some(measured.rate),
            duration_s: measured.duration.as_secs_f64(),
            sent: Some(measured.sent),
            delivered: Some(unique),
            delivered_per_s: Some(round(measured.delivered_per_s(), 1)),
            expected: Some(measured.expected),
            loss: Some(loss),
            loss_ratio: (measured.expected > 0).then(|| loss as f64 / measured.expected as f64),
            duplicates: Some(measured.totals.duplicates),
            out_of_order: Some(measured.totals.out_of_order),
            latency_ms: Latency::of(&measured.latencies),
            connect_per_s: self.traffic.connect_per_s.map(|rate| round(rate, 1)),
            server: ServerFigures::of(
                &measured.usage,
                self.baseline.server.map(|sample| sample.rss_bytes),
                self.traffic.connections,
            ),
            generator: GeneratorFigures::of(&measured.usage),
            closed_connections: self.closes.0,
            connections: None,
            publish_via: Some(spec.via_name()),
            payload_bytes: Some(spec.payload_bytes as u64),
            acked: wshub.then_some(measured.acked),
            publish_refused: wshub.then_some(measured.refused),
            publish_refusal: self.traffic.first_refusal(),
            failed: None,
            failure: None,
            closes: self.closes.1.clone(),
            source_addresses: spec.sources.len(),
            notes,
            saturate: None,
        }
    }
}
