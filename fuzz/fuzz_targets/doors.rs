//! The client's doors file: see `knockd_fuzz::doors::check`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| knockd_fuzz::doors::check(data));
