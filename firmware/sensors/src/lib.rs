//! Drivers for the box's GPIO parts, generic over embedded-hal 1.0 pins.
#![no_std]
