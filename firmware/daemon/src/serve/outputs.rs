//! `POST /api/outputs/{name}?state=on|off[&for=30s]`: switches an output from upstream (what
//! `nvrctl set` sends), behind the same token as every route.
//!
//! Receives the request and hands an [`OutputCommand`] to the outputs task through its
//! [`OutputControl`]; answers JSON `{"output", "on", "until"}` with the state after the command
//! (see `gpio::outputs` for how a command and a rule's timer interact). 400 for a bad `state`
//! or `for`, 404 for an output that is not running, 503 while shutting down, 500 when the pin
//! refused.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::routes::{ApiError, ApiState};
use super::times::format_ms;
use crate::gpio::{CommandError, OutputAction, OutputCommand};

/// The longest `for` accepted: a week. Longer is a plain `on` in disguise, and a bound keeps
/// the deadline arithmetic far from overflow.
pub const MAX_COMMAND_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The query of `POST /api/outputs/{name}`.
#[derive(Debug, Deserialize)]
pub struct SetQuery {
    state: Option<String>,
    #[serde(rename = "for")]
    for_: Option<String>,
}

/// Parses `state` and `for` into a command for `output`.
pub fn parse_command(output: &str, query: &SetQuery) -> Result<OutputCommand, String> {
    let action = match query
        .state
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("on") => OutputAction::On,
        Some("off") => OutputAction::Off,
        Some(other) => return Err(format!("state: {other:?} is not on or off")),
        None => return Err("state: missing (on or off)".into()),
    };
    let duration = match query.for_.as_deref().filter(|d| !d.is_empty()) {
        None => None,
        Some(text) => {
            let duration = humantime::parse_duration(text)
                .map_err(|e| format!("for: {text:?} is not a duration such as 30s or 5m: {e}"))?;
            if duration.is_zero() || duration > MAX_COMMAND_DURATION {
                return Err(format!(
                    "for: must be more than 0 and at most {}",
                    humantime::format_duration(MAX_COMMAND_DURATION)
                ));
            }
            Some(duration)
        }
    };
    Ok(OutputCommand {
        output: output.to_owned(),
        action,
        duration,
    })
}

/// The handler.
pub async fn set(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<SetQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let command =
        parse_command(&name, &query).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let Some(outputs) = &state.outputs else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no output named {name:?}: this box has no [[output]]"),
        ));
    };
    let report = outputs.command(command).await.map_err(|error| {
        let status = match error {
            CommandError::UnknownOutput(_) => StatusCode::NOT_FOUND,
            CommandError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            CommandError::Pin { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    })?;
    let until = report.manual_until.map(|at| {
        let ms = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        format_ms(ms)
    });
    let body = serde_json::json!({
        "output": report.output,
        "on": report.on,
        "until": until,
    });
    let mut response = body.to_string().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(state: Option<&str>, for_: Option<&str>) -> SetQuery {
        SetQuery {
            state: state.map(str::to_owned),
            for_: for_.map(str::to_owned),
        }
    }

    #[test]
    fn commands_parse_and_bad_ones_say_why() {
        let on = parse_command("light", &query(Some("ON"), Some("30s"))).unwrap();
        assert_eq!(on.action, OutputAction::On);
        assert_eq!(on.duration, Some(Duration::from_secs(30)));
        let off = parse_command("light", &query(Some("off"), None)).unwrap();
        assert_eq!((off.action, off.duration), (OutputAction::Off, None));
        for (state, for_, needle) in [
            (None, None, "state: missing"),
            (Some("toggle"), None, "not on or off"),
            (Some("on"), Some("soon"), "not a duration"),
            (Some("on"), Some("0s"), "more than 0"),
            (Some("on"), Some("30d"), "at most"),
        ] {
            let error = parse_command("light", &query(state, for_)).unwrap_err();
            assert!(error.contains(needle), "{error}");
        }
    }
}
