//! The transform's decoder and typing never panic on arbitrary record bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pipectl::schema::decode_record(data, '|');
    let spec = pipectl::spec::parse("s.yaml", include_str!("../../stacks/crime-data.yaml")).expect("example stack is valid");
    let _ = pipectl::schema::type_record(&spec.pipelines[0].schema, data, chrono::DateTime::UNIX_EPOCH);
});
