//! A `Write` for `nvrctl watch`'s output in in-process tests: complete lines go to the test over
//! a tokio channel; once the test sets `closed`, writes fail with a broken pipe, which ends
//! `watch` the way `nvrctl watch | head` does.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

/// Forwards each written line (trimmed) to `lines`; a broken pipe once `closed` is set.
pub struct LineSink {
    lines: mpsc::UnboundedSender<String>,
    closed: Arc<AtomicBool>,
    partial: Vec<u8>,
}

impl LineSink {
    /// A sink sending to `lines` until `closed` becomes true.
    pub fn new(lines: mpsc::UnboundedSender<String>, closed: Arc<AtomicBool>) -> LineSink {
        LineSink {
            lines,
            closed,
            partial: Vec::new(),
        }
    }
}

impl Write for LineSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let _ = self
                .lines
                .send(String::from_utf8_lossy(&line).trim().to_string());
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The next line from a [`LineSink`] that parses as JSON and satisfies `wanted` (earlier lines
/// are skipped). Panics — failing the test — on a line that is not JSON, a closed channel, or
/// nothing matching within `give_up` (a hang guard, not a timing assertion).
pub async fn next_line_matching(
    lines: &mut mpsc::UnboundedReceiver<String>,
    give_up: std::time::Duration,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    tokio::time::timeout(give_up, async {
        loop {
            let line = lines.recv().await.expect("watcher still running");
            let json: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            if wanted(&json) {
                return json;
            }
        }
    })
    .await
    .expect("line arrives")
}
