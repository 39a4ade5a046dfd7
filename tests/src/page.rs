//! The box's page as a user meets it in a [`Browser`]: logging in through the form, and what
//! the player shows. Shared by the page test and the UI benchmark.

use std::time::Duration;

use serde_json::Value;

use crate::webdriver::Browser;

/// A JavaScript expression for the player's state: `{time, paused, error, note, clipStart,
/// seek, wall, camera}` (`error` the media error code, `note` the page's own error text, the
/// rest from the `data-*` the page keeps on `#player`).
pub const PLAYER_STATE: &str = "(() => { const p = document.getElementById('player'); \
     return {time: p.currentTime, paused: p.paused, error: p.error && p.error.code, \
     note: p.dataset.error || null, clipStart: Number(p.dataset.clipStartMs), \
     seek: Number(p.dataset.seekMs), wall: Number(p.dataset.wallMs), camera: p.dataset.camera}; })()";

/// Types `token` into the login form at `base` (`http://HOST:PORT`) and submits it; returns
/// once the page is there.
pub fn log_in(browser: &Browser, base: &str, token: &str, timeout: Duration) -> anyhow::Result<()> {
    if !browser.current_url()?.ends_with("/login") {
        browser.goto(&format!("{base}/login"))?;
    }
    let field = browser.find("#token")?;
    browser.type_text(&field, token)?;
    browser.click(&browser.find("button[type=submit]")?)?;
    browser.wait_for(
        "the page after logging in",
        "location.pathname === '/' && !!document.getElementById('cameras')",
        timeout,
    )?;
    Ok(())
}

/// A number from JSON, also when the page stored it as text.
pub fn int(value: &Value) -> i64 {
    value
        .as_i64()
        .or_else(|| value.as_f64().map(|f| f.round() as i64))
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {value}"))
}
