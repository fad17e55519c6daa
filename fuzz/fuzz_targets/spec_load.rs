//! The spec loader (YAML parse, position index, validation) never panics on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pipectl::spec::parse("fuzz.yaml", text);
    }
});
