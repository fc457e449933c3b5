//! `wshub publish`: events into a topic, through the HTTP API (`POST /api/publish`) or over `/ws`
//! with `--ws`. One payload from `--data`/`--data-file`, or one per line of standard input — a
//! bad line is reported with its number and the rest are still published.

use super::dial::{self, Target};
use super::endpoint::{self, WsEndpoint};
use super::output::{Format, Screen};
use super::{GOAL_NOT_MET, Payload, explain};
use crate::args::{ColorWhen, DEFAULT_HTTP_URL, DEFAULT_WS_URL, PublishArgs};
use anyhow::{Context, Result, anyhow};
use serde_json::Value;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long one publish may take, connection included.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a rate-limited publish is tried again before it counts as failed.
const RATE_LIMIT_RETRIES: u32 = 10;

pub async fn run(args: PublishArgs) -> Result<ExitCode> {
    let mut screen = Screen::new(Format::Human, ColorWhen::Auto);
    let mut publisher = Publisher::new(&args).await?;
    let event = Event {
        topic: &args.topic,
        name: &args.event,
    };
    let single = match (&args.data, &args.data_file) {
        (Some(text), _) => Some(Payload::parse(text).map_err(|problem| anyhow!("--data {problem}"))?),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(Payload::parse(&text).map_err(|problem| anyhow!("{} {problem}", path.display()))?)
        }
        (None, None) => None,
    };
    match single {
        Some(payload) => match publisher.publish(&event, payload).await {
            Ok(ack) => {
                print_ack(&mut screen, &ack, args.json);
                Ok(ExitCode::SUCCESS)
            }
            Err(Failure::Rejected(reason)) => {
                screen.problem(reason);
                Ok(ExitCode::from(GOAL_NOT_MET))
            }
            Err(Failure::Fatal(reason)) => Err(anyhow!(reason)),
        },
        None => publish_lines(&mut publisher, &event, &mut screen, args.json).await,
    }
}

/// Publishes each line of standard input; reports bad lines by number and goes on.
async fn publish_lines(
    publisher: &mut Publisher,
    event: &Event<'_>,
    screen: &mut Screen,
    json: bool,
) -> Result<ExitCode> {
    if std::io::stdin().is_terminal() {
        screen.note("reading payloads from the terminal, one JSON object per line; end with Ctrl-D");
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let (mut number, mut published, mut failed) = (0u64, 0u64, 0u64);
    while let Some(line) = lines.next_line().await.context("cannot read standard input")? {
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        let payload = match Payload::parse(&line) {
            Ok(payload) => payload,
            Err(problem) => {
                screen.problem(format!("line {number}: payload {problem}"));
                failed += 1;
                continue;
            }
        };
        match publisher.publish(event, payload).await {
            Ok(ack) => {
                print_ack(screen, &ack, json);
                published += 1;
            }
            Err(Failure::Rejected(reason)) => {
                screen.problem(format!("line {number}: {reason}"));
                failed += 1;
            }
            Err(Failure::Fatal(reason)) => {
                return Err(anyhow!("line {number}: {reason} ({published} published before it)"));
            }
        }
    }
    if failed > 0 {
        screen.note(format!(
            "{failed} of {} lines failed; {published} published",
            failed + published
        ));
        return Ok(ExitCode::from(GOAL_NOT_MET));
    }
    if published == 0 {
        screen.warn("standard input had no payloads: nothing published");
        return Ok(ExitCode::from(GOAL_NOT_MET));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_ack(screen: &mut Screen, ack: &Ack, json: bool) {
    let line = match (json, ack.offset) {
        (false, Some(offset)) => offset.to_string(),
        _ => super::output::render::json_line(&ack.text),
    };
    // A closed stdout (`| head -1`) must not stop the remaining lines from being published.
    let _ = screen.result(&line);
}

/// The topic and event name every payload is published under.
struct Event<'a> {
    topic: &'a str,
    name: &'a str,
}

/// The hub's answer to one publish.
struct Ack {
    /// As the hub sent it.
    text: String,
    offset: Option<u64>,
}

/// Why one publish failed.
enum Failure {
    /// The hub refused this payload; the next one may be accepted.
    Rejected(String),
    /// The hub cannot be used at all (unreachable, bad credentials, connection gone).
    Fatal(String),
}

enum Publisher {
    Http(HttpPublisher),
    Ws(WsPublisher),
}

impl Publisher {
    async fn new(args: &PublishArgs) -> Result<Publisher> {
        if args.ws {
            let url = args.url.as_deref().unwrap_or(DEFAULT_WS_URL);
            let target = Target {
                endpoint: WsEndpoint::parse(url)?,
                token: args.token.clone(),
                client_id: args.client_id.clone(),
            };
            let client = dial::dial(&target, None, None).await.map_err(|e| anyhow!(e))?;
            return Ok(Publisher::Ws(WsPublisher {
                client,
                has_token: target.token.is_some(),
            }));
        }
        let base = endpoint::http_base(args.url.as_deref().unwrap_or(DEFAULT_HTTP_URL))?;
        let url = base.join("api/publish").context("cannot build the publish URL")?;
        let http = reqwest::Client::builder()
            .timeout(PUBLISH_TIMEOUT)
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Publisher::Http(HttpPublisher {
            http,
            shown: endpoint::redact(&base).trim_end_matches('/').to_owned(),
            url,
            bearer: args.api_key.clone().or_else(|| args.token.clone()),
        }))
    }

    async fn publish(&mut self, event: &Event<'_>, payload: Payload) -> Result<Ack, Failure> {
        match self {
            Publisher::Http(http) => http.publish(event, payload).await,
            Publisher::Ws(ws) => ws.publish(event, payload).await,
        }
    }
}

struct HttpPublisher {
    http: reqwest::Client,
    url: url::Url,
    /// The base URL as the user may see it.
    shown: String,
    bearer: Option<String>,
}

impl HttpPublisher {
    async fn publish(&self, event: &Event<'_>, payload: Payload) -> Result<Ack, Failure> {
        let body = payload.message(&[("topic", event.topic), ("event", event.name)]);
        let mut attempt = 0;
        loop {
            let mut request = self
                .http
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(bearer) = &self.bearer {
                request = request.bearer_auth(bearer);
            }
            let response = request
                .send()
                .await
                .map_err(|e| Failure::Fatal(explain::http_failure(&self.shown, &e)))?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok());
            let text = response
                .text()
                .await
                .map_err(|e| Failure::Fatal(explain::http_failure(&self.shown, &e)))?;
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            match status {
                200..=299 => {
                    return Ok(Ack {
                        offset: answer["offset"].as_u64(),
                        text,
                    });
                }
                429 if attempt < RATE_LIMIT_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs_f64(retry_after.unwrap_or(1.0).clamp(0.05, 60.0))).await;
                }
                // The API key or token is missing or not good enough: every publish would fail alike.
                401 | 403 => {
                    let hint = if self.bearer.is_some() {
                        "check --api-key"
                    } else {
                        "pass --api-key"
                    };
                    return Err(Failure::Fatal(explain::api_error(status, &answer, Some(hint))));
                }
                404 if answer.is_null() => {
                    return Err(Failure::Fatal(format!(
                        "{} has no /api/publish (HTTP 404; is this a wshub hub?)",
                        self.shown
                    )));
                }
                _ => return Err(Failure::Rejected(explain::api_error(status, &answer, None))),
            }
        }
    }
}

struct WsPublisher {
    client: wshub_client::Client,
    has_token: bool,
}

impl WsPublisher {
    async fn publish(&mut self, event: &Event<'_>, payload: Payload) -> Result<Ack, Failure> {
        let fields = [("type", "publish"), ("topic", event.topic), ("event", event.name)];
        let mut attempt = 0;
        loop {
            let reply = dial::request(&mut self.client, &fields, &payload, PUBLISH_TIMEOUT)
                .await
                .map_err(Failure::Fatal)?;
            if !reply.is_error() {
                return Ok(Ack {
                    offset: reply.value["payload"]["offset"].as_u64(),
                    text: reply.text,
                });
            }
            let code = reply.value["payload"]["code"].as_str().unwrap_or_default();
            let reason = explain::error_message(&reply.value);
            match code {
                "rate_limited" if attempt < RATE_LIMIT_RETRIES => {
                    attempt += 1;
                    let wait = reply.value["payload"]["retry_after"].as_f64().unwrap_or(1.0);
                    tokio::time::sleep(Duration::from_secs_f64(wait.clamp(0.01, 60.0))).await;
                }
                "unauthorized" | "token_expired" => return Err(Failure::Fatal(reason)),
                "forbidden" if !self.has_token => {
                    return Err(Failure::Rejected(format!(
                        "{reason} (anonymous connections may not publish: pass --token)"
                    )));
                }
                _ => return Err(Failure::Rejected(reason)),
            }
        }
    }
}
