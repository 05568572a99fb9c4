//! knockd.conf built from real directives: see `knockd_fuzz::config::check_shaped`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| knockd_fuzz::config::check_shaped(data));
