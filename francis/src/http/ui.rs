//! The fleet web UI at `GET /ui`: a page of plain HTML, CSS and JavaScript built into the binary
//! (no Node toolchain, no build step), served by a host's control server and by the runtime's
//! operations server alike. It carries no data: the page reads `GET /api/cluster/state` and
//! takes actions through preflight and dispatch, with the caller's credential, so loading it
//! needs none ([`super::auth::needed`]).
//!
//! Every answer forbids everything but this origin's own scripts, styles, images and API calls
//! (no inline script or style), and is revalidated on each load by its ETag: a new binary
//! serves new assets at once.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// Where the page is served.
pub(crate) const UI_PATH: &str = "/ui";

/// What the page may load: its own scripts, styles and images, and calls to its own origin;
/// nothing inline, no plugins, no form submissions (its script handles its one form), and no
/// framing by other sites.
const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// One file of the page.
struct Asset {
    /// Its name under `/ui/`.
    name: &'static str,
    /// Its media type.
    content_type: &'static str,
    /// Its content.
    body: &'static str,
}

/// The page's files; the first is the page itself.
const ASSETS: [Asset; 4] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("ui/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("ui/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("ui/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("ui/icon.svg"),
    },
];

/// The routes of the page, for any server's state: `GET /ui` and `GET /ui/{file}` (`/ui/`
/// sends the browser to `/ui`).
pub(crate) fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(UI_PATH, get(page))
        .route("/ui/", get(|| async { Redirect::permanent(UI_PATH) }))
        .route("/ui/{file}", get(file))
}

async fn page(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(index) => serve(index, &headers),
        None => with_security_headers(
            (
                StatusCode::NOT_FOUND,
                [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                "no such file of the fleet UI; the page is at /ui",
            )
                .into_response(),
        ),
    }
}

/// The strong ETag of each asset: a digest of its content, computed once.
fn etag(index: usize) -> &'static str {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    let etags = ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha256::digest(asset.body.as_bytes());
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    });
    etags.get(index).map_or("\"\"", String::as_str)
}

/// Asset `index`, or `304 Not Modified` when the browser holds it already.
fn serve(index: usize, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.get(index) else {
        return with_security_headers(StatusCode::NOT_FOUND.into_response());
    };
    let tag = etag(index);
    let fresh = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|candidate| {
            let candidate = candidate.trim();
            candidate == "*" || candidate.trim_start_matches("W/") == tag
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(tag) {
        out.insert(ETAG, value);
    }
    // Kept, but checked with the server on every use: cheap (a 304), and never stale.
    out.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_security_headers(response)
}

/// The headers every answer of the UI carries.
fn with_security_headers(mut response: Response) -> Response {
    let out = response.headers_mut();
    out.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    out.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    out.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn fetch(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(IF_NONE_MATCH, tag);
        }
        routes::<()>()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_page_and_its_files_are_served_with_a_strict_policy() {
        for (path, kind) in [
            ("/ui", "text/html"),
            ("/ui/index.html", "text/html"),
            ("/ui/app.js", "text/javascript"),
            ("/ui/app.css", "text/css"),
            ("/ui/icon.svg", "image/svg+xml"),
        ] {
            let response = fetch(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers();
            assert!(
                headers[CONTENT_TYPE].to_str().unwrap().starts_with(kind),
                "{path}"
            );
            let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("default-src 'none'"), "{csp}");
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(!csp.contains("unsafe-inline"), "{csp}");
            assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(headers[CACHE_CONTROL], "no-cache");
            assert!(headers.contains_key(ETAG), "{path}");
        }
        let missing = fetch("/ui/secrets.txt", None).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(missing.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        let slash = fetch("/ui/", None).await;
        assert!(slash.status().is_redirection());
        assert_eq!(slash.headers()["location"], "/ui");
    }

    #[tokio::test]
    async fn a_file_the_browser_holds_is_not_sent_again() {
        let first = fetch("/ui/app.js", None).await;
        let tag = first.headers()[ETAG].to_str().unwrap().to_owned();
        let again = fetch("/ui/app.js", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = fetch("/ui/app.js", Some("\"something-else\"")).await;
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_names_its_files() {
        let html = ASSETS[0].body;
        assert!(html.contains(r#"<script src="/ui/app.js" defer></script>"#));
        assert!(html.contains(r#"<link rel="stylesheet" href="/ui/app.css">"#));
        for inline in ["<script>", "<style", " style=", " onclick=", "javascript:"] {
            assert!(!html.contains(inline), "the page has {inline}");
        }
        // The script writes data to the page as text, never as markup.
        let js = ASSETS[1].body;
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!js.contains(sink), "app.js uses {sink}");
        }
    }
}
