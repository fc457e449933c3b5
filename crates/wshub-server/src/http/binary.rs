//! `POST /api/publish/{topic}` (CONTRACT §11): a backend publishes raw bytes as a binary
//! frame (CONTRACT §12).
//!
//! On the message path this is the HTTP door to the step a client's binary publish takes
//! (`session/binary.rs`): the query becomes the frame's metadata, the body stays the bytes it
//! arrived in (no copy), and `Node::publish_binary_as_server` hands the `Upload` to the broker,
//! which places it and has the delivered frame built once for every subscriber.

use super::api::{ApiCaller, Published, RawBody, parse_topic, published};
use super::error::{ApiError, ErrorBody};
use crate::node::Node;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use bytes::Bytes;
use std::sync::Arc;
use wshub_protocol::Topic;
use wshub_protocol::binary::{BinaryKind, HUB_KEYS, Upload};

/// Publishes the body as a binary frame whose metadata is the query plus `topic`.
#[utoipa::path(post, path = "/api/publish/{topic}", tag = "publish",
    params(
        ("topic" = String, Path, description = "Topic name; may contain `/`"),
        ("kind" = Option<String>, Query, description = "The frame's kind: `raw` (default), `image`, `audio` or `file`"),
        ("format" = Option<String>, Query, description = "e.g. `jpeg`. Every query parameter but `kind` becomes a metadata member; a value that is a JSON number is written as a number"),
        ("width" = Option<u64>, Query, description = "Image width (metadata)"),
        ("height" = Option<u64>, Query, description = "Image height (metadata)"),
    ),
    request_body(content = RawBody, content_type = "application/octet-stream", description = "The frame's body, as is"),
    responses(
        (status = 200, description = "Published", body = Published),
        (status = 400, description = "Unknown `kind`, a bad topic name, a parameter given twice, or `topic` in the query", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No topic rule matches", body = ErrorBody),
        (status = 413, description = "The body, or the frame subscribers would receive, exceeds `max_message_size`", body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn publish_binary(
    State(node): State<Arc<Node>>,
    _caller: ApiCaller,
    Path(topic): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    RawBody(body): RawBody,
) -> Result<Json<Published>, ApiError> {
    if node.shutdown.is_draining() {
        return Err(ApiError::unavailable("the hub is shutting down"));
    }
    let topic = parse_topic(&node, &topic)?;
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let (kind, metadata) = query_metadata(&topic, &query)?;
    let upload = Upload::from_parts(kind, Bytes::from(metadata), body)
        .map_err(|error| ApiError::bad_request(format!("invalid metadata: {error}")))?;
    let max = node.config.websocket.max_message_size.as_usize();
    if upload.frame().delivered_len_bound("server") > max {
        return Err(ApiError::too_large("the binary event would exceed max_message_size"));
    }
    let position = node
        .publish_binary_as_server(upload)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(published(topic, position)))
}

/// The frame's kind (`kind`, default raw) and its metadata as compact JSON: `topic` first,
/// then the other parameters in query order. A value that is a JSON number is written as
/// that number, verbatim (so no precision is lost); anything else is a string. The hub's own
/// keys (`offset`, `epoch`, `id`, `timestamp`, `sender_id`) are left out: it sets them.
fn query_metadata(topic: &Topic, query: &[(String, String)]) -> Result<(BinaryKind, Vec<u8>), ApiError> {
    let mut kind = BinaryKind::Raw;
    let room: usize = query.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
    let mut out = Vec::with_capacity(topic.as_str().len() + room + 16);
    out.extend_from_slice(b"{\"topic\":");
    write_string(&mut out, topic.as_str());
    for (at, (key, value)) in query.iter().enumerate() {
        if query[..at].iter().any(|(earlier, _)| earlier == key) {
            return Err(ApiError::bad_request(format!("query parameter `{key}` is given twice")));
        }
        match key.as_str() {
            "kind" => {
                kind = BinaryKind::from_name(value).ok_or_else(|| {
                    ApiError::bad_request(format!("unknown kind `{value}`: use raw, image, audio or file"))
                })?;
            }
            "topic" => {
                return Err(ApiError::bad_request(
                    "the topic is the path (/api/publish/{topic}), not a query parameter",
                ));
            }
            key if HUB_KEYS.contains(&key) => {}
            _ => {
                out.push(b',');
                write_string(&mut out, key);
                out.push(b':');
                if is_json_number(value) {
                    out.extend_from_slice(value.as_bytes());
                } else {
                    write_string(&mut out, value);
                }
            }
        }
    }
    out.push(b'}');
    Ok((kind, out))
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(out, text).expect("a string always serialises into a Vec");
}

/// Whether `text` is a JSON number as it stands (no sign `+`, no leading zeros, no
/// whitespace, finite).
fn is_json_number(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'e' | b'E' | b'+'))
        && serde_json::from_str::<serde_json::Number>(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn metadata(query: &[(&str, &str)]) -> Result<(BinaryKind, String), ApiError> {
        let topic = Topic::parse("cams/1").expect("topic");
        query_metadata(&topic, &pairs(query)).map(|(kind, m)| (kind, String::from_utf8(m).expect("UTF-8")))
    }

    #[test]
    fn numbers_become_numbers_and_the_rest_strings() {
        let (kind, text) = metadata(&[
            ("kind", "image"),
            ("format", "jpeg"),
            ("width", "640"),
            ("ratio", "-1.5e3"),
            ("zip", "007"),
            ("big", "123456789012345678901234567890"),
            ("plus", "+5"),
            ("name", "a \"b\" ✓"),
            ("nan", "NaN"),
            ("empty", ""),
        ])
        .expect("valid");
        assert_eq!(kind, BinaryKind::Image);
        assert_eq!(
            text,
            r#"{"topic":"cams/1","format":"jpeg","width":640,"ratio":-1.5e3,"zip":"007","big":123456789012345678901234567890,"plus":"+5","name":"a \"b\" ✓","nan":"NaN","empty":""}"#
        );
        let upload = Upload::from_parts(kind, Bytes::from(text), Bytes::new()).expect("the hub's metadata is valid");
        assert_eq!(upload.topic().as_str(), "cams/1");
    }

    #[test]
    fn kind_defaults_to_raw_and_hub_keys_are_left_to_the_hub() {
        let (kind, text) =
            metadata(&[("sender_id", "admin"), ("offset", "1"), ("id", "x"), ("n", "1")]).expect("valid");
        assert_eq!(kind, BinaryKind::Raw);
        assert_eq!(text, r#"{"topic":"cams/1","n":1}"#);
    }

    #[test]
    fn bad_parameters_are_refused() {
        for query in [
            &[("kind", "video")][..],
            &[("topic", "other")][..],
            &[("w", "1"), ("w", "2")][..],
            &[("kind", "raw"), ("kind", "raw")][..],
        ] {
            let error = metadata(query).expect_err("refused");
            assert_eq!(error.status(), http::StatusCode::BAD_REQUEST, "{query:?}");
        }
    }
}
