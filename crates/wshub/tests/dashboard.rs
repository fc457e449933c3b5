//! The built-in dashboard (CONTRACT §1, `dashboard.path`) through the real binary: the page,
//! its security policy, the metrics stream path written into it, every asset it references,
//! 404 for anything else, and configured paths. `tests/browser` runs the page itself.

mod common;

use common::Hub;
use reqwest::StatusCode;
use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderMap, IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS,
};

/// The policy the issue asks for; the hub may add directives, never loosen these.
const POLICY: [&str; 4] = [
    "default-src 'self'",
    "connect-src 'self' ws: wss:",
    "img-src 'self' data:",
    "style-src 'self'",
];

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn get(hub: &Hub, path: &str) -> Page {
    get_with(hub, path, &HeaderMap::new()).await
}

async fn get_with(hub: &Hub, path: &str, headers: &HeaderMap) -> Page {
    let response = reqwest::Client::new()
        .get(hub.url(path))
        .headers(headers.clone())
        .send()
        .await
        .expect("GET");
    Page {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.text().await.expect("body"),
    }
}

fn header(page: &Page, name: reqwest::header::HeaderName) -> &str {
    page.headers
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ASCII header")
}

/// Every `src="…"` and `href="…"` value of the page.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for rest in html.split(attribute).skip(1) {
            found.push(rest[..rest.find('"').expect("a closing quote")].to_owned());
        }
    }
    found
}

fn meta_stream_path(path: &str) -> String {
    format!(r#"<meta name="wshub-metrics-path" content="{path}">"#)
}

/// The page answers on `path` as HTML with the policy.
async fn assert_page(hub: &Hub, path: &str) -> Page {
    let page = get(hub, path).await;
    assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
    assert_eq!(header(&page, CONTENT_TYPE), "text/html; charset=utf-8");
    let policy = header(&page, CONTENT_SECURITY_POLICY);
    let directives: Vec<&str> = policy.split(';').map(str::trim).collect();
    for directive in POLICY {
        assert!(directives.contains(&directive), "{directive:?} missing from {policy:?}");
    }
    assert!(!policy.contains("unsafe-"), "{policy}");
    assert!(page.body.starts_with("<!doctype html>"));
    page
}

#[tokio::test]
async fn the_page_is_html_with_its_policy_and_names_the_metrics_stream() {
    let hub = Hub::start("").await;
    let page = assert_page(&hub, "/dashboard").await;
    assert!(page.body.contains(&meta_stream_path("/ws/metrics")), "{}", page.body);
    assert_eq!(header(&page, CACHE_CONTROL), "no-cache");
    let slash = assert_page(&hub, "/dashboard/").await;
    assert_eq!(slash.body, page.body, "with or without the trailing slash");
    // No inline code: the policy would block it.
    assert!(!page.body.contains("<style"));
    assert!(!page.body.contains(" style="));
    assert!(!page.body.contains("<script>"));
}

#[tokio::test]
async fn every_asset_the_page_references_is_served_with_its_type() {
    let hub = Hub::start("").await;
    let page = get(&hub, "/dashboard").await;
    let assets = references(&page.body);
    assert!(assets.len() >= 4, "{assets:?}");
    for asset in &assets {
        assert!(asset.starts_with("/dashboard/assets/"), "{asset}");
        let served = get(&hub, asset).await;
        assert_eq!(served.status, StatusCode::OK, "{asset}");
        let expected = match asset.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("txt") => "text/plain; charset=utf-8",
            other => panic!("an asset of an unexpected kind: {other:?}"),
        };
        assert_eq!(header(&served, CONTENT_TYPE), expected, "{asset}");
        assert_eq!(header(&served, X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert!(!served.body.is_empty(), "{asset}");
        let caching = header(&served, CACHE_CONTROL);
        if asset.contains("/vendor/") {
            assert!(caching.contains("max-age="), "{asset}: {caching}");
        } else {
            assert_eq!(caching, "no-cache", "{asset}");
        }
    }
    // The script is the dashboard's, and it reads the path from the page.
    let script = get(&hub, "/dashboard/assets/dashboard.js").await;
    assert!(script.body.contains("wshub-metrics-path"));
    assert!(assets.iter().any(|a| a.ends_with("/vendor/uPlot.iife.min.js")));
}

#[tokio::test]
async fn a_browser_holding_the_current_version_gets_304() {
    let hub = Hub::start("").await;
    for path in ["/dashboard", "/dashboard/assets/dashboard.css"] {
        let first = get(&hub, path).await;
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, first.headers[ETAG].clone());
        let again = get_with(&hub, path, &headers).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.body.is_empty());
    }
}

#[tokio::test]
async fn anything_else_under_assets_is_404() {
    let hub = Hub::start("").await;
    for path in [
        "/dashboard/assets/nope.js",
        "/dashboard/assets/vendor/README.md",
        "/dashboard/assets/index.html",
        "/dashboard/assets/..%2fmod.rs",
        "/dashboard/assets/",
    ] {
        let page = get(&hub, path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn a_configured_stream_path_is_written_into_the_page() {
    let hub = Hub::start("metrics:\n  stream_path: /live/metrics\n").await;
    let page = assert_page(&hub, "/dashboard").await;
    assert!(page.body.contains(&meta_stream_path("/live/metrics")), "{}", page.body);
    assert!(!page.body.contains("/ws/metrics"));
    // The path the page names is the stream (its plain GET is the Snapshot).
    let (status, snapshot) = hub.get("/live/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(snapshot["type"], "Snapshot");
}

#[tokio::test]
async fn dashboard_path_moves_the_page_and_its_assets() {
    let hub = Hub::start("dashboard:\n  path: /ops/board\n").await;
    let page = assert_page(&hub, "/ops/board").await;
    for asset in references(&page.body) {
        assert!(asset.starts_with("/ops/board/assets/"), "{asset}");
        assert_eq!(get(&hub, &asset).await.status, StatusCode::OK, "{asset}");
    }
    assert_eq!(get(&hub, "/dashboard").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&hub, "/dashboard/assets/dashboard.js").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_page_can_be_the_root() {
    let hub = Hub::start("dashboard:\n  path: /\n").await;
    let page = assert_page(&hub, "/").await;
    for asset in references(&page.body) {
        assert!(asset.starts_with("/assets/"), "{asset}");
        assert_eq!(get(&hub, &asset).await.status, StatusCode::OK, "{asset}");
    }
    // The hub's own endpoints are untouched.
    assert_eq!(hub.get("/health").await.0, 200);
    assert_eq!(get(&hub, "/nothing-here").await.status, StatusCode::NOT_FOUND);
}
