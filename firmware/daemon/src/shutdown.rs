//! One shutdown signal that every long-lived task hears.
//!
//! [`ShutdownTrigger::new`] makes the sending half; each task holds a cloned [`Shutdown`] and
//! awaits [`Shutdown::requested`] in its `select!`. Backed by a `tokio::sync::watch` channel, so
//! a task that subscribes after the trigger still sees it. [`ShutdownTrigger::on_signals`] fires
//! on SIGINT or SIGTERM.

use tokio::sync::watch;

/// The sending half: fire it once, every [`Shutdown`] wakes.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// The receiving half, cloned into each task.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

impl ShutdownTrigger {
    /// A new trigger and its first receiver.
    pub fn new() -> (Self, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (Self(tx), Shutdown(rx))
    }

    /// Asks every task to stop.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Another receiver.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }

    /// Waits for SIGINT or SIGTERM, then triggers and returns the signal's name. Errors when the
    /// signal handlers cannot be installed.
    pub async fn on_signals(&self) -> std::io::Result<&'static str> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        self.trigger();
        Ok(name)
    }
}

impl Shutdown {
    /// Resolves once shutdown is requested (at once if it already was). Cancel-safe.
    pub async fn requested(&mut self) {
        // An error means the trigger is gone: nobody can ask any more, which is a request too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether shutdown was requested.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn late_subscribers_see_the_trigger() {
        let (trigger, mut early) = ShutdownTrigger::new();
        assert!(!early.is_requested());
        trigger.trigger();
        early.requested().await;
        let mut late = trigger.subscribe();
        assert!(late.is_requested());
        late.requested().await;
    }
}
