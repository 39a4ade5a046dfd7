//! The HTTP routes: `GET /api/recordings`, `GET /api/clip.mp4` (a time range, or one event by
//! id), `POST /api/outputs/{name}` (in `outputs`), `GET /api/live` (in `live`), the page (in
//! `ui`), the token check in front of every route, and the JSON error bodies (400 bad query, 401
//! no or wrong token, 403 a cookie-authenticated change from another origin, 404 no video or no
//! such event, 416 bad range, 500 store failure).
//!
//! Handlers parse the query, plan on the blocking pool (the store does file I/O) and answer; a
//! clip body streams from [`super::clip::body_stream`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::auth::Token;
use super::clip::{body_stream, ClipError, ClipPlan, ClipReader};
use super::live::LiveFeed;
use super::range::{parse_range, RangeRequest};
use super::times::{format_ms, parse_query_time_ms};
use super::ui::{self, Credential};
use crate::media::TIMESCALE_90K;
use crate::store::{CameraRecordings, Store};

/// Clip downloads served at once. Each costs ~2 MiB and a blocking-pool thread while it reads;
/// eight people pulling clips from one small box at once is already far more than it is for,
/// and a ninth gets a clear 503 instead of slowing everyone (and the recording) down.
pub const MAX_CLIP_DOWNLOADS: usize = 8;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct ApiState {
    /// The store clips are read from.
    pub store: Store,
    /// The token requests must carry.
    pub token: Token,
    /// Permits for clip downloads in progress ([`MAX_CLIP_DOWNLOADS`]).
    pub downloads: Arc<tokio::sync::Semaphore>,
    /// Manual output commands (`None` on a box without outputs).
    pub outputs: Option<crate::gpio::OutputControl>,
    /// The state bus for `GET /api/live`; none on a bare API server.
    pub live: Option<LiveFeed>,
    /// Serve the page (`[http] ui`).
    pub ui: bool,
    /// Becomes `true` when the server shuts down: long-lived responses (live streams) end.
    pub stopping: Arc<tokio::sync::watch::Sender<bool>>,
}

impl ApiState {
    /// The state of a server reading `store` and requiring `token`, without live state or page.
    pub fn new(store: Store, token: Token) -> ApiState {
        ApiState {
            store,
            token,
            downloads: Arc::new(tokio::sync::Semaphore::new(MAX_CLIP_DOWNLOADS)),
            outputs: None,
            live: None,
            ui: false,
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

/// The router with its routes, the token check and the security headers.
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/api/recordings", get(recordings))
        .route("/api/clip.mp4", get(clip))
        .route("/api/outputs/{name}", post(super::outputs::set))
        .route("/api/live", get(super::live::live))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    // The page's routes bring their own check (the login is public).
    let routes = if state.ui {
        api.merge(ui::router(state.clone()))
    } else {
        api
    };
    routes
        .layer(axum::middleware::from_fn(ui::security_headers))
        .with_state(state)
}

/// An error answer: status and a JSON body `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error answer with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ClipError> for ApiError {
    fn from(error: ClipError) -> ApiError {
        let status = match error {
            ClipError::NoVideo { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    match ui::credential(&state, &request) {
        Some(Credential::Cookie)
            if !ui::cookie_request_is_same_origin(request.method(), request.headers()) =>
        {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "a change authenticated by the page's cookie must come from the page",
            )
            .into_response()
        }
        Some(_) => next.run(request).await,
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send `Authorization: Bearer TOKEN` or `?token=TOKEN`",
        )
        .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint (GET /api/recordings, GET /api/clip.mp4, POST /api/outputs/NAME, \
         GET /api/live)",
    )
}

/// The query of both endpoints (`token` is read by the middleware); `event` only for clips.
#[derive(Debug, Deserialize)]
struct TimeQuery {
    camera: Option<String>,
    from: Option<String>,
    to: Option<String>,
    event: Option<u64>,
}

fn parse_time(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|text| {
            parse_query_time_ms(text)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("{name}: {e}")))
        })
        .transpose()
}

/// A query after checking: the camera (if named), the times as Unix ms, the event (if named).
struct CheckedQuery {
    camera: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    event: Option<u64>,
}

fn parse_query(
    query: Result<Query<TimeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<CheckedQuery, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let from = parse_time("from", query.from.as_deref())?;
    let to = parse_time("to", query.to.as_deref())?;
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("from ({}) is after to ({})", format_ms(from), format_ms(to)),
            ));
        }
    }
    if query.event.is_some() && (from.is_some() || to.is_some()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "give either event or from/to, not both",
        ));
    }
    Ok(CheckedQuery {
        camera: query.camera.filter(|c| !c.is_empty()),
        from,
        to,
        event: query.event,
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// `GET /api/recordings?camera=&from=&to=`.
async fn recordings(
    State(state): State<ApiState>,
    query: Result<Query<TimeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let CheckedQuery {
        camera, from, to, ..
    } = parse_query(query)?;
    let store = state.store.clone();
    let listed = blocking(move || store.recordings()).await?;
    let body = recordings_json(&listed, camera.as_deref(), from, to);
    let mut response = body.to_string().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The JSON of the recordings listing: per camera its ranges (with gaps) and events that
/// overlap `[from, to]`.
fn recordings_json(
    listed: &[CameraRecordings],
    camera: Option<&str>,
    from: Option<i64>,
    to: Option<i64>,
) -> serde_json::Value {
    let overlaps =
        |start: i64, end: i64| from.is_none_or(|from| end > from) && to.is_none_or(|to| start < to);
    let cameras: Vec<serde_json::Value> = listed
        .iter()
        .filter(|c| camera.is_none_or(|name| c.camera == name))
        .map(|c| {
            let ranges: Vec<serde_json::Value> = c
                .ranges
                .iter()
                .filter(|r| overlaps(r.start_wall_ms, r.end_wall_ms))
                .map(|r| {
                    serde_json::json!({
                        "start": format_ms(r.start_wall_ms),
                        "end": format_ms(r.end_wall_ms),
                        "start_ms": r.start_wall_ms,
                        "end_ms": r.end_wall_ms,
                        "duration_ms": r.media_duration_90k * 1000 / u64::from(TIMESCALE_90K),
                        "segments": r.segments,
                        "fragments": r.fragments,
                        "frames": r.frames,
                        "bytes": r.bytes,
                        "gap_before_ms": r.gap_before_ms,
                        "clock_jump_before": r.clock_jump_before,
                    })
                })
                .collect();
            // `start`/`end` span the video kept (pre-roll to post-roll): what a clip of the
            // event asks for. The trigger times and sensors say what happened.
            let events: Vec<serde_json::Value> = c
                .events
                .iter()
                .filter(|e| overlaps(e.video_start_wall_ms, e.video_end_wall_ms))
                .map(|e| {
                    serde_json::json!({
                        "id": e.id,
                        "start": format_ms(e.video_start_wall_ms),
                        "end": format_ms(e.video_end_wall_ms),
                        "start_ms": e.video_start_wall_ms,
                        "end_ms": e.video_end_wall_ms,
                        "trigger_start_ms": e.start_wall_ms,
                        "trigger_end_ms": e.end_wall_ms,
                        "video_from_ms": e.video_from_wall_ms,
                        "duration_ms": e.media_duration_90k * 1000 / u64::from(TIMESCALE_90K),
                        "fragments": e.fragments,
                        "frames": e.frames,
                        "sensors": e.sensors,
                    })
                })
                .collect();
            serde_json::json!({ "camera": c.camera, "ranges": ranges, "events": events })
        })
        .collect();
    serde_json::json!({ "cameras": cameras })
}

/// `GET /api/clip.mp4?camera=&from=&to=`.
async fn clip(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<TimeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let CheckedQuery {
        camera,
        from,
        to,
        event,
    } = parse_query(query)?;
    let Ok(permit) = Arc::clone(&state.downloads).try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_CLIP_DOWNLOADS} clip downloads are already running; try again later"),
        ));
    };
    let (camera, from, to) = match event {
        Some(id) => event_span(&state.store, id, camera).await?,
        None => {
            let missing = |name: &str| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("{name} is required (or give event=ID)"),
                )
            };
            (
                camera.ok_or_else(|| missing("camera"))?,
                from.ok_or_else(|| missing("from"))?,
                to.ok_or_else(|| missing("to"))?,
            )
        }
    };
    let store = state.store.clone();
    let plan = {
        let camera = camera.clone();
        blocking(move || ClipPlan::new(&store, &camera, from, to)).await??
    };
    let plan = Arc::new(plan);
    let total = plan.total_len();
    let etag = plan.etag();
    // A range applies only to the clip the client has the beginning of (RFC 9110 If-Range).
    let same_clip = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|tag| tag == etag);
    let range_header = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| same_clip);
    let (status, range) = match parse_range(range_header, total) {
        RangeRequest::Whole => (StatusCode::OK, None),
        RangeRequest::Part(range) => (StatusCode::PARTIAL_CONTENT, Some(range)),
        RangeRequest::Unsatisfiable => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the clip is {total} bytes"),
            )
            .into_response();
            insert(
                &mut response,
                header::CONTENT_RANGE,
                format!("bytes */{total}"),
            );
            return Ok(response);
        }
    };
    tracing::info!(
        camera = %camera,
        from = %format_ms(plan.start_wall_ms()),
        to = %format_ms(plan.end_wall_ms()),
        fragments = plan.fragment_count(),
        bytes = total,
        range = ?range,
        "sending clip"
    );
    let length = range.map_or(total, |r| r.len());
    let reader = ClipReader::new(Arc::clone(&plan), state.store.clone(), range);
    // The permit lives as long as the body: until the last byte is sent or the client leaves.
    let body = futures::StreamExt::map(body_stream(reader), move |chunk| {
        let _held = &permit;
        chunk
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    insert(&mut response, header::CONTENT_TYPE, "video/mp4".into());
    insert(&mut response, header::CONTENT_LENGTH, length.to_string());
    insert(&mut response, header::ACCEPT_RANGES, "bytes".into());
    insert(&mut response, header::ETAG, etag);
    if let Some(range) = range {
        insert(
            &mut response,
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{total}", range.first, range.last),
        );
    }
    let file_name = format!(
        "{camera}-{}.mp4",
        format_ms(plan.start_wall_ms()).replace(':', "-")
    );
    insert(
        &mut response,
        header::CONTENT_DISPOSITION,
        format!("inline; filename=\"{file_name}\""),
    );
    insert_named(
        &mut response,
        "x-clip-start",
        format_ms(plan.start_wall_ms()),
    );
    insert_named(&mut response, "x-clip-end", format_ms(plan.end_wall_ms()));
    if let Some(truncation) = plan.truncation() {
        insert_named(
            &mut response,
            "x-clip-truncated",
            format!(
                "{}: {}",
                format_ms(truncation.at_wall_ms),
                truncation.reason
            ),
        );
    }
    Ok(response)
}

/// The camera and video span (pre-roll start to post-roll end) of event `id`, as listed.
async fn event_span(
    store: &Store,
    id: u64,
    camera: Option<String>,
) -> Result<(String, i64, i64), ApiError> {
    let store = store.clone();
    let listed = blocking(move || store.recordings()).await?;
    listed
        .iter()
        .filter(|c| camera.as_deref().is_none_or(|name| c.camera == name))
        .find_map(|c| {
            let event = c.events.iter().find(|e| e.id == id)?;
            Some((
                c.camera.clone(),
                event.video_start_wall_ms,
                event.video_end_wall_ms,
            ))
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no event {id}{} in the store (never recorded, or wrapped over since)",
                    camera.map_or_else(String::new, |c| format!(" of camera {c:?}"))
                ),
            )
        })
}

fn insert(response: &mut Response, name: header::HeaderName, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(name, value);
    }
}

fn insert_named(response: &mut Response, name: &'static str, value: String) {
    insert(response, header::HeaderName::from_static(name), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventRecording, RecordingRange};

    fn event(start_wall_ms: i64, end_wall_ms: i64) -> EventRecording {
        EventRecording {
            id: 7,
            start_wall_ms: start_wall_ms + 2_000,
            end_wall_ms: Some(end_wall_ms - 3_000),
            sensors: vec!["pir-hall".into()],
            video_from_wall_ms: start_wall_ms,
            video_start_wall_ms: start_wall_ms,
            video_end_wall_ms: end_wall_ms,
            media_duration_90k: 0,
            fragments: 1,
            frames: 1,
            segment_ids: vec![1],
        }
    }

    fn range(start_wall_ms: i64, end_wall_ms: i64) -> RecordingRange {
        RecordingRange {
            start_wall_ms,
            end_wall_ms,
            media_duration_90k: 0,
            segments: 1,
            fragments: 1,
            frames: 1,
            bytes: 1,
            gap_before_ms: None,
            clock_jump_before: false,
        }
    }

    #[test]
    fn listing_filters_by_camera_and_overlap_and_lists_events() {
        let listed = vec![
            CameraRecordings {
                camera: "front".into(),
                ranges: vec![range(0, 10_000), range(20_000, 30_000)],
                events: vec![event(1_000, 9_000), event(20_000, 28_000)],
            },
            CameraRecordings {
                camera: "back".into(),
                ranges: vec![range(0, 30_000)],
                events: Vec::new(),
            },
        ];
        let json = recordings_json(&listed, Some("front"), Some(15_000), None);
        let cameras = json["cameras"].as_array().unwrap();
        assert_eq!(cameras.len(), 1);
        let ranges = cameras[0]["ranges"].as_array().unwrap();
        assert_eq!(ranges.len(), 1);
        assert_eq!(ranges[0]["start_ms"], 20_000);
        assert_eq!(ranges[0]["start"], "1970-01-01T00:00:20.000Z");
        let events = cameras[0]["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "the event before `from` is left out");
        assert_eq!(
            (events[0]["start_ms"].as_i64(), events[0]["end_ms"].as_i64()),
            (Some(20_000), Some(28_000)),
            "an event spans its video, pre-roll to post-roll"
        );
        assert_eq!(events[0]["trigger_start_ms"], 22_000);
        assert_eq!(events[0]["sensors"][0], "pir-hall");

        let all = recordings_json(&listed, None, None, Some(5_000));
        assert_eq!(all["cameras"].as_array().unwrap().len(), 2);
        assert!(all["cameras"][1]["events"].as_array().unwrap().is_empty());
    }
}
