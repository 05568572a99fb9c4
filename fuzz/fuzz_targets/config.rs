//! knockd.conf as arbitrary bytes: see `knockd_fuzz::config::check_bytes`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| knockd_fuzz::config::check_bytes(data));
