//! One-time-sequences files: see `knockd_fuzz::onetime::check`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| knockd_fuzz::onetime::check(data));
