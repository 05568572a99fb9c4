//! Captured frames on every link type: see `knockd_fuzz::wire::check`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| knockd_fuzz::wire::check(data));
