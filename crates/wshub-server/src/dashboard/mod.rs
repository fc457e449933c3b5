//! The built-in dashboard on `dashboard.path` (CONTRACT §1): one web page, its script and
//! style sheet, and the vendored charting library (uPlot), all compiled into the binary.
//!
//! Not on the message path. The page is a client of the live metrics stream
//! (`metrics.stream_path`, CONTRACT §8) like any other; the server only hands out these
//! files. The stream path and the asset URLs are written into the page once, at start, so
//! the script never guesses them. Every response carries a Content-Security-Policy that lets
//! the page load scripts and styles from the hub only and connect only to it: the page has
//! no inline script or style, and the script writes user-chosen text (topic names) with
//! `textContent` only.
//!
//! Routes, with `base` = `dashboard.path` without a trailing `/`:
//! `GET {base}` and `GET {base}/` (the page), `GET {base}/assets/{file}` (404 for an
//! unknown file). Config validation keeps other configured paths out of them.

use crate::http::ApiError;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;

/// The policy sent with every dashboard response: only the hub's own scripts, styles and
/// images (plus `data:` images), WebSocket connections, and nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
     img-src 'self' data:; style-src 'self'; base-uri 'none'; form-action 'none'";

/// The page, with `{{base}}`, `{{metrics_path}}` and `{{version}}` to fill in at start.
const INDEX_HTML: &str = include_str!("assets/index.html");

/// The placeholder of the page that becomes the asset folder's URL prefix.
const BASE: &str = "{{base}}";

/// How long a browser may use a file without asking the hub again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caching {
    /// Ask every time (answered with 304 while the `ETag` matches), so a new hub version is
    /// picked up at once: the page and its own script and style.
    Revalidate,
    /// A week: vendored files change only with their version.
    Long,
}

impl Caching {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Caching::Revalidate => "no-cache",
            Caching::Long => "public, max-age=604800",
        })
    }
}

/// A file under `assets/`, as compiled in.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    caching: Caching,
}

/// Every file served under `{base}/assets/`.
const ASSETS: [Asset; 6] = [
    Asset {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/dashboard.js"),
        caching: Caching::Revalidate,
    },
    Asset {
        name: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/dashboard.css"),
        caching: Caching::Revalidate,
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/icon.svg"),
        caching: Caching::Revalidate,
    },
    Asset {
        name: "vendor/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/vendor/uPlot.iife.min.js"),
        caching: Caching::Long,
    },
    Asset {
        name: "vendor/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/vendor/uPlot.min.css"),
        caching: Caching::Long,
    },
    // uPlot's MIT licence travels with the binary that embeds it, and the page links to it.
    Asset {
        name: "vendor/uPlot-LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("assets/vendor/LICENSE"),
        caching: Caching::Long,
    },
];

/// One file ready to serve: the bytes are shared, never copied per request.
struct File {
    body: Bytes,
    content_type: HeaderValue,
    etag: HeaderValue,
    caching: Caching,
}

impl File {
    fn new(body: Bytes, content_type: &'static str, caching: Caching) -> File {
        File {
            etag: etag(&body),
            body,
            content_type: HeaderValue::from_static(content_type),
            caching,
        }
    }

    /// The file, or 304 when the browser already holds this version.
    fn respond(&self, request: &HeaderMap) -> Response {
        let mut response = if self.matches(request) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut response = self.body.clone().into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, self.content_type.clone());
            response
        };
        let headers = response.headers_mut();
        headers.insert(header::ETAG, self.etag.clone());
        headers.insert(header::CACHE_CONTROL, self.caching.header());
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        response
    }

    /// Whether `If-None-Match` names this file's `ETag` (weak or strong) or is `*`.
    fn matches(&self, request: &HeaderMap) -> bool {
        let Some(Ok(tags)) = request.get(header::IF_NONE_MATCH).map(HeaderValue::to_str) else {
            return false;
        };
        let ours = self.etag.as_bytes();
        tags.split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == ours)
    }
}

/// A strong `ETag` from the content: it changes whenever the file does.
fn etag(body: &[u8]) -> HeaderValue {
    let mut hasher = DefaultHasher::new();
    hasher.write(body);
    HeaderValue::try_from(format!("\"{:016x}\"", hasher.finish())).expect("quoted hex digits are a valid header value")
}

/// The dashboard's files, built once at start; cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    files: Arc<Files>,
}

struct Files {
    /// `dashboard.path` without its trailing `/` (empty when it is `/`).
    base: String,
    page: File,
    assets: Vec<(&'static str, File)>,
}

impl Dashboard {
    /// The dashboard for `dashboard.path` = `path`, reading the metrics stream at `metrics_path`.
    pub fn new(path: &str, metrics_path: &str) -> Dashboard {
        let base = path.trim_end_matches('/').to_owned();
        let html = render_page(&base, metrics_path);
        let assets = ASSETS
            .iter()
            .map(|a| {
                let body = Bytes::from_static(a.body);
                (a.name, File::new(body, a.content_type, a.caching))
            })
            .collect();
        Dashboard {
            files: Arc::new(Files {
                page: File::new(Bytes::from(html), "text/html; charset=utf-8", Caching::Revalidate),
                assets,
                base,
            }),
        }
    }

    /// The page's routes, to merge into the hub's router.
    pub fn routes<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let base = &self.files.base;
        let mut router = Router::new();
        if base.is_empty() {
            router = router.route("/", get(page));
        } else {
            // Both spellings serve the page: it uses absolute asset URLs, so neither
            // breaks relative links.
            router = router.route(base, get(page)).route(&format!("{base}/"), get(page));
        }
        router
            .route(&format!("{base}/assets/{{*file}}"), get(asset))
            .with_state(self)
    }
}

/// `GET {base}` and `GET {base}/`: the page.
async fn page(State(dashboard): State<Dashboard>, headers: HeaderMap) -> Response {
    dashboard.files.page.respond(&headers)
}

/// `GET {base}/assets/{file}`: one compiled-in file, or 404.
async fn asset(State(dashboard): State<Dashboard>, Path(file): Path<String>, headers: HeaderMap) -> Response {
    match dashboard.files.assets.iter().find(|(name, _)| *name == file) {
        Some((_, found)) => found.respond(&headers),
        None => ApiError::not_found("not_found", format!("no dashboard asset {file:?}")).into_response(),
    }
}

/// The page with its placeholders filled in (each value HTML-escaped).
fn render_page(base: &str, metrics_path: &str) -> String {
    INDEX_HTML
        .replace(BASE, &escape_html(base))
        .replace("{{metrics_path}}", &escape_html(metrics_path))
        .replace("{{version}}", &escape_html(env!("CARGO_PKG_VERSION")))
}

/// Escapes text for an HTML text node or a quoted attribute value.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_both_quotes() {
        assert_eq!(
            escape_html(r#"/a&b<c>"d"'e'"#),
            "/a&amp;b&lt;c&gt;&quot;d&quot;&#39;e&#39;"
        );
        assert_eq!(escape_html("/ws/metrics"), "/ws/metrics");
    }

    #[test]
    fn the_page_names_the_stream_path_and_no_placeholder_is_left() {
        let html = render_page("/dash", "/live/metrics");
        assert!(html.contains(r#"<meta name="wshub-metrics-path" content="/live/metrics">"#));
        assert!(html.contains(r#"src="/dash/assets/dashboard.js""#));
        assert!(!html.contains("{{"), "every placeholder is filled");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let lower = INDEX_HTML.to_ascii_lowercase();
        assert!(!lower.contains("<style"));
        assert!(!lower.contains(" style="));
        // No event handler attribute (`onclick=` and the like) either.
        for rest in lower.split(" on").skip(1) {
            let name_end = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
            assert!(
                !rest[name_end..].starts_with('='),
                "an inline handler: on{}",
                &rest[..name_end]
            );
        }
        for script in lower.split("<script").skip(1) {
            let tag_end = script.find('>').expect("a closed tag");
            assert!(script[..tag_end].contains("src="), "every script is a file");
            assert!(script[tag_end..].starts_with("></script>"), "with no inline body");
        }
    }

    #[test]
    fn every_asset_the_page_references_is_compiled_in() {
        let html = render_page("", "/ws/metrics");
        let referenced: Vec<&str> = html
            .split("\"/assets/")
            .skip(1)
            .map(|rest| &rest[..rest.find('"').expect("a closing quote")])
            .collect();
        assert!(referenced.len() >= 4, "{referenced:?}");
        for name in referenced {
            assert!(ASSETS.iter().any(|a| a.name == name), "{name} is not served");
        }
    }

    #[test]
    fn a_matching_etag_is_answered_with_304() {
        let file = File::new(Bytes::from_static(b"body"), "text/plain", Caching::Long);
        let mut request = HeaderMap::new();
        assert_eq!(file.respond(&request).status(), StatusCode::OK);
        request.insert(header::IF_NONE_MATCH, file.etag.clone());
        let response = file.respond(&request);
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers()[header::ETAG], file.etag);
        let weak = format!("\"other\", W/{}", file.etag.to_str().expect("ASCII"));
        request.insert(header::IF_NONE_MATCH, HeaderValue::try_from(weak).expect("valid"));
        assert_eq!(file.respond(&request).status(), StatusCode::NOT_MODIFIED);
        request.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(file.respond(&request).status(), StatusCode::OK);
    }
}
