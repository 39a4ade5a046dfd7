//! Fuzz target `config`: see `edgenvr_tests::fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgenvr_tests::fuzz::config(data);
});
