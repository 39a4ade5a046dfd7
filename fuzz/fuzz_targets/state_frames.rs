//! Fuzz target `state_frames`: see `edgenvr_tests::fuzz::state_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgenvr_tests::fuzz::state_frames(data);
});
