//! Fuzz target `slot_scan`: see `edgenvr_tests::fuzz::slot_image`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgenvr_tests::fuzz::slot_image(data);
});
