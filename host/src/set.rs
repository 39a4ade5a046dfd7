//! `nvrctl set BOX OUTPUT on|off [--for 30s]`: switches an output of a box through its HTTP
//! API (`POST /api/outputs/OUTPUT?state=on&for=30s`, with the API token).
//!
//! Receives the command; emits the box's answer (the output's state after the command, and
//! until when a timed command holds). Blocking I/O on the calling thread. How a command and a
//! rule's timer interact is the box's business (README, "Switching outputs").

use std::time::Duration;

use crate::http::{BoxClient, HttpError};

/// What the box says after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetReport {
    /// The output.
    pub output: String,
    /// On now.
    pub on: bool,
    /// When a timed command ends (RFC 3339), if one holds.
    pub until: Option<String>,
}

/// Sends the command and returns the box's answer.
pub fn set_output(
    client: &BoxClient,
    output: &str,
    on: bool,
    duration: Option<Duration>,
) -> Result<SetReport, HttpError> {
    let mut query = vec![("state", if on { "on" } else { "off" }.to_owned())];
    if let Some(duration) = duration {
        query.push(("for", format!("{}ms", duration.as_millis())));
    }
    let path = format!(
        "/api/outputs/{}",
        url::form_urlencoded::byte_serialize(output.as_bytes()).collect::<String>()
    );
    let url = client.url(&path, &query);
    let answer = client.post_json(&url)?;
    Ok(SetReport {
        output: answer["output"].as_str().unwrap_or(output).to_owned(),
        on: answer["on"].as_bool().unwrap_or(on),
        until: answer["until"].as_str().map(str::to_owned),
    })
}
