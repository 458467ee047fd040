#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_oauth_guard_fuzz::url_identity(data));
