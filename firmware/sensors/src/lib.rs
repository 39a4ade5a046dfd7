//! Drivers for the box's GPIO parts, generic over embedded-hal 1.0 pins.
//!
//! * [`Pir`]: a passive-infrared motion input (HC-SR501 and kin) with debounce, polarity,
//!   hold/retrigger time and a warm-up window that ignores the module's power-on false triggers.
//! * [`Output`]: a switched output (light, relay, buzzer) with polarity and an optional
//!   on-duration.
//!
//! Neither driver owns a clock: every call that depends on time takes `now_ms`, a monotonic
//! millisecond count chosen by the caller (time since boot on a microcontroller, since process
//! start on Linux). That keeps the drivers deterministic under test and usable without `std`.
//! Each driver takes its pin by value and gives it back from `release`; pin errors come back
//! wrapped in [`Error`]. Drivers do not sleep or block: the caller polls them, and may use
//! [`Pir::wait_for_edge`] with an async pin (`embedded_hal_async::digital::Wait`) to sleep until
//! the input moves, plus a timer for [`Pir::next_deadline_ms`].
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod output;
mod pir;

pub use output::Output;
pub use pir::{Pir, PirChange, PirConfig};

/// A driver error: the pin's own error, wrapped so callers can tell it came from the HAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// Reading or writing the pin failed.
    Pin(E),
}

impl<E: core::fmt::Debug> core::fmt::Display for Error<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Pin(e) => write!(f, "GPIO pin error: {e:?}"),
        }
    }
}

impl<E: core::fmt::Debug> core::error::Error for Error<E> {}
