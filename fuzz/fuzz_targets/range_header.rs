//! Fuzz target `range_header`: see `edgenvr_tests::fuzz::range_header`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgenvr_tests::fuzz::range_header(data);
});
