//! Operation streams through two engines: see `knockd_fuzz::engine::check`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| knockd_fuzz::engine::check(data));
