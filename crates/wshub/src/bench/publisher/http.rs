//! Publishing through wshub's HTTP API: each lane sends one `POST /api/publish` at a time on a
//! keep-alive connection, as its share of the rate falls due.

use super::{Plan, Shared};
use crate::bench::adapter::EVENT;
use crate::bench::message::{Stamp, write_body};
use crate::cli::explain;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

/// How long one HTTP publish may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP publishing lane: where to POST, and as whom.
#[derive(Debug, Clone)]
pub struct HttpLane {
    pub http: reqwest::Client,
    /// `…/api/publish`.
    pub url: url::Url,
    /// The base URL as the user may see it.
    pub shown: String,
    pub bearer: Option<String>,
    /// `{"topic":…,"event":"bench","payload":` — the body goes after it.
    pub prefix: Arc<str>,
}

impl HttpLane {
    pub fn prefix_for(topic: &str) -> Arc<str> {
        Arc::from(format!(r#"{{"topic":{},"event":"{EVENT}","payload":"#, json!(topic)))
    }

    pub fn client(lanes: usize) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .pool_max_idle_per_host(lanes)
            .tcp_nodelay(true)
            .build()
    }
}

/// Publishes through `POST /api/publish` as stream `stream`, one request at a time, following
/// `plans`.
pub async fn publish_http(lane: HttpLane, stream: u32, shared: Arc<Shared>, mut plans: watch::Receiver<Option<Plan>>) {
    let publishing = &shared.publishing;
    let mut plan: Option<Plan> = None;
    let (mut seq, mut sent_in_plan) = (0u64, 0u64);
    loop {
        let Some(current) = plan else {
            tokio::select! {
                () = shared.stop.cancelled() => return,
                changed = plans.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    plan = *plans.borrow_and_update();
                    sent_in_plan = 0;
                }
            }
            continue;
        };
        let due_at = current.due_at(stream, sent_in_plan);
        tokio::select! {
            () = shared.stop.cancelled() => return,
            changed = plans.changed() => {
                if changed.is_err() {
                    return;
                }
                plan = *plans.borrow_and_update();
                sent_in_plan = 0;
                continue;
            }
            // A lane slower than the step still notices its end in time.
            () = tokio::time::sleep_until(due_at.min(current.ends).into()) => {}
        }
        let now = shared.clock.now_micros();
        if now >= current.until {
            plan = None;
            publishing.finish(stream, current.step);
            continue;
        }
        let mut body = String::with_capacity(lane.prefix.len() + shared.payload_bytes + 1);
        body.push_str(&lane.prefix);
        write_body(
            &mut body,
            Stamp {
                seq,
                stream,
                sent_micros: now,
            },
            shared.payload_bytes,
        );
        body.push('}');
        seq += 1;
        sent_in_plan += 1;
        let in_window = now >= current.from;
        publishing.sent.fetch_add(1, Ordering::Relaxed);
        publishing
            .sent_in_window
            .fetch_add(u64::from(in_window), Ordering::Relaxed);
        let mut request = lane
            .http
            .post(lane.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(bearer) = &lane.bearer {
            request = request.bearer_auth(bearer);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                publishing.fail(stream, explain::http_failure(&lane.shown, &error));
                return;
            }
        };
        let status = response.status().as_u16();
        publishing.answered(in_window, (200..300).contains(&status));
        if (200..300).contains(&status) {
            // Read the body so the connection can be reused.
            let _ = response.bytes().await;
            continue;
        }
        let answer: Value = match response.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        match status {
            401 | 403 => {
                let hint = "pass --api-key (or an admin --token)";
                publishing.fail(
                    stream,
                    format!(
                        "the hub refused to publish: {}",
                        explain::api_error(status, &answer, Some(hint))
                    ),
                );
                return;
            }
            404 => {
                publishing.fail(
                    stream,
                    format!(
                        "{} has no /api/publish (HTTP 404; is this a wshub hub? see --api-url)",
                        lane.shown
                    ),
                );
                return;
            }
            _ => publishing.refuse(explain::api_error(status, &answer, None)),
        }
    }
}
