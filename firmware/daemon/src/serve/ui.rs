//! The browser page: its static assets (embedded in the binary from `assets/ui/`), the login
//! that turns the token into a cookie, and the security headers every response carries.
//!
//! Routes (when `[http] ui` is on, the default):
//! - `GET /login`, `POST /login` (form field `token`), `POST /logout`, and the login page's own
//!   assets (`/login.js`, `/style.css`, `/icon.svg`) need no token;
//! - `GET /` (the page) and `GET /app.js` need it like every API route — as the login cookie
//!   [`COOKIE_NAME`], `Authorization: Bearer`, or `?token=` (which sets the cookie and redirects
//!   to the same path without the token, so a bookmark can log in). Without it `/` redirects to
//!   `/login` and an asset answers 401.
//!
//! The cookie holds the token itself (`HttpOnly; SameSite=Strict; Path=/`, 30 days). It is not
//! marked `Secure`: the box serves plain HTTP on a LAN and has no TLS of its own; behind a TLS
//! proxy, the proxy can add the flag.
//!
//! [`security_headers`] adds to every response, API included, a Content-Security-Policy that
//! allows nothing but this origin's own script, style, images, media and connections (no inline
//! script or style, no framing, forms post only here), plus `nosniff`, `no-referrer` and
//! same-origin resource and opener policies. [`cookie_request_is_same_origin`] is the CSRF check
//! the API applies to state-changing requests that authenticate by cookie.
//!
//! Pure request handling, no I/O beyond the response; the assets are `&'static` bytes.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::auth::COOKIE_NAME;
use super::routes::ApiState;

/// The Content-Security-Policy of every response: only this origin's own files, nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; media-src 'self'; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// How long the login cookie lasts: 30 days, so a phone stays logged in; "Log out" ends it.
const COOKIE_MAX_AGE_S: u64 = 30 * 24 * 3600;

/// The longest login form body read: the token field with room to spare (tokens are short).
const LOGIN_BODY_MAX_BYTES: usize = 4096;

/// One embedded file.
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    /// A strong validator computed at compile time, so a reload costs a 304.
    etag: &'static str,
}

/// FNV-1a over `bytes`: a cheap content hash for ETags (not a security property).
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// `"` + 16 hex digits + `"`, at compile time.
const fn etag_of(bytes: &[u8]) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = fnv1a(bytes);
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

macro_rules! asset {
    ($file:literal, $content_type:literal) => {{
        const BYTES: &[u8] = include_bytes!(concat!("../../assets/ui/", $file));
        const TAG: [u8; 18] = etag_of(BYTES);
        Asset {
            bytes: BYTES,
            content_type: $content_type,
            etag: match std::str::from_utf8(&TAG) {
                Ok(tag) => tag,
                Err(_) => "\"0\"",
            },
        }
    }};
}

static INDEX_HTML: Asset = asset!("index.html", "text/html; charset=utf-8");
static APP_JS: Asset = asset!("app.js", "text/javascript; charset=utf-8");
static LOGIN_HTML: Asset = asset!("login.html", "text/html; charset=utf-8");
static LOGIN_JS: Asset = asset!("login.js", "text/javascript; charset=utf-8");
static STYLE_CSS: Asset = asset!("style.css", "text/css; charset=utf-8");
static ICON_SVG: Asset = asset!("icon.svg", "image/svg+xml");

/// Every embedded file, for the size check.
#[cfg(test)]
static ALL_ASSETS: [&Asset; 6] = [
    &INDEX_HTML,
    &APP_JS,
    &LOGIN_HTML,
    &LOGIN_JS,
    &STYLE_CSS,
    &ICON_SVG,
];

/// The page's routes: public ones (login and its assets) and those behind the token.
pub fn router(state: ApiState) -> Router<ApiState> {
    let protected = Router::new()
        .route(
            "/",
            get(|headers: HeaderMap| async move { serve(&INDEX_HTML, headers) }),
        )
        .route(
            "/app.js",
            get(|headers: HeaderMap| async move { serve(&APP_JS, headers) }),
        )
        .layer(axum::middleware::from_fn_with_state(state, require_session));
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route(
            "/login.js",
            get(|h: HeaderMap| async move { serve(&LOGIN_JS, h) }),
        )
        .route(
            "/style.css",
            get(|h: HeaderMap| async move { serve(&STYLE_CSS, h) }),
        )
        .route(
            "/icon.svg",
            get(|h: HeaderMap| async move { serve(&ICON_SVG, h) }),
        )
        .merge(protected)
}

/// An asset with its type, validator and cache rule (`no-cache`: revalidate, 304 when the same).
fn serve(asset: &'static Asset, headers: HeaderMap) -> Response {
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == asset.etag));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(asset.bytes))
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// How a request proved it knows the token, if it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer`.
    Bearer,
    /// `?token=`.
    Query,
    /// The login cookie.
    Cookie,
}

/// Which of the request's credentials carries the token (bearer first, then query, then cookie).
pub fn credential(state: &ApiState, request: &Request) -> Option<Credential> {
    let headers = request.headers();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if state.token.matches_request(authorization, None) {
        return Some(Credential::Bearer);
    }
    if state.token.matches_request(None, request.uri().query()) {
        return Some(Credential::Query);
    }
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    state
        .token
        .matches_cookie(cookie)
        .then_some(Credential::Cookie)
}

/// The CSRF check for a request that authenticates by cookie: safe methods pass; any other
/// must come from this origin (`Sec-Fetch-Site` same-origin or absent, and an `Origin` header,
/// when sent, naming the `Host` it was sent to). `SameSite=Strict` already keeps the cookie off
/// cross-site requests; this holds even for a browser that ignores it.
pub fn cookie_request_is_same_origin(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let site_ok = text(header::HeaderName::from_static("sec-fetch-site"))
        .is_none_or(|site| site == "same-origin");
    let origin_ok = match (text(header::ORIGIN), text(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|rest| rest == host),
        (Some(_), None) => false,
    };
    site_ok && origin_ok
}

async fn require_session(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    match credential(&state, &request) {
        Some(Credential::Query) => {
            // A bookmark `/?token=T`: keep the token in the cookie, not in the address bar.
            let mut response = redirect(request.uri().path());
            set_login_cookie(&mut response, &state);
            response
        }
        Some(_) => next.run(request).await,
        None if request.uri().path() == "/" => redirect("/login"),
        None => (StatusCode::UNAUTHORIZED, "log in at /login").into_response(),
    }
}

/// `GET /login`: the form, or straight to the page when the cookie is already good.
async fn login_page(State(state): State<ApiState>, request: Request) -> Response {
    if credential(&state, &request) == Some(Credential::Cookie) {
        return redirect("/");
    }
    serve(&LOGIN_HTML, request.headers().clone())
}

/// `POST /login` with `token=...`: the cookie and the page, or 401 and the form saying so.
async fn login(State(state): State<ApiState>, request: Request) -> Response {
    let body = match to_bytes(request.into_body(), LOGIN_BODY_MAX_BYTES).await {
        Ok(body) => body,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "login form too large").into_response(),
    };
    let presented = url::form_urlencoded::parse(&body)
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if state.token.matches(presented.trim()) {
        tracing::info!("page login");
        let mut response = redirect("/");
        set_login_cookie(&mut response, &state);
        response
    } else {
        tracing::info!("page login refused: wrong token");
        refused_login_page()
    }
}

/// The login form with its "wrong token" note shown, status 401. The note is part of the static
/// page; only a class on `<body>` changes, so nothing from the request reaches the HTML.
fn refused_login_page() -> Response {
    let html =
        String::from_utf8_lossy(LOGIN_HTML.bytes).replacen("<body>", "<body class=\"refused\">", 1);
    let mut response = (StatusCode::UNAUTHORIZED, html).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(LOGIN_HTML.content_type),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /logout`: the cookie cleared, back to the form.
async fn logout() -> Response {
    let mut response = redirect("/login");
    let expired = format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn set_login_cookie(response: &mut Response, state: &ApiState) {
    let cookie = format!(
        "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE_S}",
        state.token.cookie_value()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
}

/// 303 See Other to `location` (a path of this server).
fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Adds the security headers to every response (see the module doc).
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("x-frame-options", "DENY"),
    ] {
        headers.insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

#[cfg(test)]
mod server_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_page_is_well_under_200_kb() {
        let total: usize = ALL_ASSETS.iter().map(|a| a.bytes.len()).sum();
        assert!(total < 100_000, "the page's assets are {total} bytes");
    }

    #[test]
    fn no_asset_uses_inline_script_or_style_or_html_insertion() {
        for asset in [&INDEX_HTML, &LOGIN_HTML] {
            let html = std::str::from_utf8(asset.bytes).unwrap();
            assert!(!html.contains(" style="), "inline style attribute");
            assert!(!html.contains("<style"), "inline style element");
            assert!(!has_event_handler_attribute(html), "inline event handler");
            for script in html.split("<script").skip(1) {
                assert!(script.trim_start().starts_with("src="), "inline script");
            }
            assert!(!html.contains("http://") && !html.contains("https://"));
        }
        for asset in [&APP_JS, &LOGIN_JS] {
            let js = std::str::from_utf8(asset.bytes).unwrap();
            for forbidden in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
            ] {
                assert!(!js.contains(forbidden), "{forbidden} in a script");
            }
            assert!(!js.contains("http://") && !js.contains("https://"));
        }
    }

    /// Whether `html` has an attribute like ` onclick=`.
    fn has_event_handler_attribute(html: &str) -> bool {
        html.match_indices(" on").any(|(at, _)| {
            let rest = &html[at + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        })
    }

    #[test]
    fn the_event_handler_check_finds_one() {
        assert!(has_event_handler_attribute("<a onclick=\"x()\">"));
        assert!(!has_event_handler_attribute("<p>turn on the light</p>"));
        assert!(!has_event_handler_attribute("<p>on=off</p>"));
    }

    #[test]
    fn etags_differ_with_content() {
        assert_ne!(INDEX_HTML.etag, APP_JS.etag);
        assert_eq!(INDEX_HTML.etag.len(), 18);
        assert!(INDEX_HTML.etag.starts_with('"') && INDEX_HTML.etag.ends_with('"'));
    }

    #[test]
    fn only_same_origin_unsafe_requests_pass_with_a_cookie() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        let host = ("host", "box.lan:7421");
        assert!(cookie_request_is_same_origin(&Method::GET, &headers(&[])));
        assert!(cookie_request_is_same_origin(
            &Method::GET,
            &headers(&[("sec-fetch-site", "cross-site")])
        ));
        assert!(cookie_request_is_same_origin(
            &Method::POST,
            &headers(&[
                host,
                ("origin", "http://box.lan:7421"),
                ("sec-fetch-site", "same-origin")
            ])
        ));
        assert!(cookie_request_is_same_origin(
            &Method::POST,
            &headers(&[host])
        ));
        assert!(!cookie_request_is_same_origin(
            &Method::POST,
            &headers(&[host, ("origin", "http://evil.example")])
        ));
        assert!(!cookie_request_is_same_origin(
            &Method::POST,
            &headers(&[host, ("sec-fetch-site", "same-site")])
        ));
        assert!(!cookie_request_is_same_origin(
            &Method::POST,
            &headers(&[("origin", "http://box.lan:7421")])
        ));
    }
}
