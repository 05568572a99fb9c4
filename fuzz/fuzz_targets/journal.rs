//! The journal of pending stops, whole and cut: see `knockd_fuzz::journal::check`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| knockd_fuzz::journal::check(data));
