//! The switched-output driver: a light, relay or buzzer on one pin.
//!
//! Receives a pin (by value) and switch requests (on, off, on for a duration) with the current
//! monotonic time in milliseconds; drives the pin, writing it only when the state really changes
//! (a relay clicks, a bus write costs time). An on-duration ends at the first [`Output::update`]
//! at or after its deadline; [`Output::next_deadline_ms`] says when that is due.

use embedded_hal::digital::OutputPin;

use crate::Error;

/// How long the output stays on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnUntil {
    Off,
    /// On until switched off.
    Indefinitely,
    /// On until this time (ms).
    Time(u64),
}

/// A switched output on pin `P`.
#[derive(Debug)]
pub struct Output<P> {
    pin: P,
    active_low: bool,
    on: OnUntil,
}

impl<P: OutputPin> Output<P> {
    /// Takes the pin and drives it to "off" (low, or high when `active_low`), so the output starts
    /// in a known state whatever the pin was left at.
    pub fn new(pin: P, active_low: bool) -> Result<Self, Error<P::Error>> {
        let mut output = Output {
            pin,
            active_low,
            on: OnUntil::Off,
        };
        output.drive(false)?;
        Ok(output)
    }

    fn drive(&mut self, on: bool) -> Result<(), Error<P::Error>> {
        if on != self.active_low {
            self.pin.set_high().map_err(Error::Pin)
        } else {
            self.pin.set_low().map_err(Error::Pin)
        }
    }

    fn switch(&mut self, next: OnUntil) -> Result<(), Error<P::Error>> {
        let was_on = self.is_on();
        let now_on = next != OnUntil::Off;
        if was_on != now_on {
            self.drive(now_on)?;
        }
        self.on = next;
        Ok(())
    }

    /// Switches on until [`Output::switch_off`] (or a later `switch_on_for` sets a deadline).
    pub fn switch_on(&mut self) -> Result<(), Error<P::Error>> {
        self.switch(OnUntil::Indefinitely)
    }

    /// Switches off now, cancelling any on-duration.
    pub fn switch_off(&mut self) -> Result<(), Error<P::Error>> {
        self.switch(OnUntil::Off)
    }

    /// Switches on until `now_ms + duration_ms`. An output already on for longer (or
    /// indefinitely) keeps its later end: a second request never shortens the first.
    pub fn switch_on_for(&mut self, now_ms: u64, duration_ms: u64) -> Result<(), Error<P::Error>> {
        let until_ms = now_ms.saturating_add(duration_ms);
        match self.on {
            OnUntil::Indefinitely => Ok(()),
            OnUntil::Time(t) if t >= until_ms => Ok(()),
            _ if duration_ms == 0 => Ok(()),
            _ => self.switch(OnUntil::Time(until_ms)),
        }
    }

    /// Ends an on-duration whose deadline has passed. Call it at [`Output::next_deadline_ms`].
    pub fn update(&mut self, now_ms: u64) -> Result<(), Error<P::Error>> {
        match self.on {
            OnUntil::Time(until_ms) if now_ms >= until_ms => self.switch(OnUntil::Off),
            _ => Ok(()),
        }
    }

    /// When the current on-duration ends, if one is running.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        match self.on {
            OnUntil::Time(until_ms) => Some(until_ms),
            _ => None,
        }
    }

    /// Whether the output is on.
    pub fn is_on(&self) -> bool {
        self.on != OnUntil::Off
    }

    /// Gives the pin back, in whatever state it is.
    pub fn release(self) -> P {
        self.pin
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};
    use embedded_hal_mock::eh1::MockError;

    use super::*;

    #[test]
    fn starts_off_and_switches_the_pin_only_on_change() {
        let pin = Mock::new(&[
            Transaction::set(State::Low),
            Transaction::set(State::High),
            Transaction::set(State::Low),
        ]);
        let mut out = Output::new(pin, false).unwrap();
        assert!(!out.is_on());
        out.switch_on().unwrap();
        out.switch_on().unwrap();
        assert!(out.is_on());
        out.switch_off().unwrap();
        out.switch_off().unwrap();
        out.release().done();
    }

    #[test]
    fn active_low_drives_the_pin_inverted() {
        let pin = Mock::new(&[
            Transaction::set(State::High),
            Transaction::set(State::Low),
            Transaction::set(State::High),
        ]);
        let mut out = Output::new(pin, true).unwrap();
        out.switch_on().unwrap();
        out.switch_off().unwrap();
        out.release().done();
    }

    #[test]
    fn on_duration_ends_at_its_deadline_and_is_extended_not_shortened() {
        let pin = Mock::new(&[
            Transaction::set(State::Low),
            Transaction::set(State::High),
            Transaction::set(State::Low),
        ]);
        let mut out = Output::new(pin, false).unwrap();
        out.switch_on_for(1000, 500).unwrap();
        assert_eq!(out.next_deadline_ms(), Some(1500));
        out.switch_on_for(1200, 100).unwrap(); // shorter: keeps 1500
        assert_eq!(out.next_deadline_ms(), Some(1500));
        out.switch_on_for(1400, 600).unwrap(); // longer: 2000
        assert_eq!(out.next_deadline_ms(), Some(2000));
        out.update(1999).unwrap();
        assert!(out.is_on());
        out.update(2000).unwrap();
        assert!(!out.is_on());
        assert_eq!(out.next_deadline_ms(), None);
        out.update(3000).unwrap();
        out.release().done();
    }

    #[test]
    fn indefinite_on_is_not_cut_by_a_duration() {
        let pin = Mock::new(&[Transaction::set(State::Low), Transaction::set(State::High)]);
        let mut out = Output::new(pin, false).unwrap();
        out.switch_on().unwrap();
        out.switch_on_for(0, 10).unwrap();
        out.update(100).unwrap();
        assert!(out.is_on());
        out.release().done();
    }

    #[test]
    fn a_pin_error_is_wrapped_and_the_state_is_unchanged() {
        let err = MockError::Io(std::io::ErrorKind::NotConnected);
        let pin = Mock::new(&[
            Transaction::set(State::Low),
            Transaction::set(State::High).with_error(err.clone()),
        ]);
        let mut out = Output::new(pin, false).unwrap();
        assert_eq!(out.switch_on(), Err(Error::Pin(err)));
        assert!(!out.is_on());
        out.release().done();
    }
}
