//! The transform's decoder and typing never panic on arbitrary record bytes.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pipectl::schema::Compiled;

fn schema() -> &'static Compiled {
    static S: OnceLock<Compiled> = OnceLock::new();
    S.get_or_init(|| {
        let loaded = pipectl::spec::parse("s.yaml", include_str!("../../stacks/crime-data.yaml")).expect("example stack is valid");
        Compiled::new(&loaded.spec.pipelines[0].schema)
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = pipectl::schema::decode_record(data, '|');
    let mut out = Vec::new();
    if schema().write_document(data, chrono::DateTime::UNIX_EPOCH, &mut out).is_ok() {
        // Whatever the transform accepts, it turns into valid JSON.
        let _: serde_json::Value = serde_json::from_slice(&out).expect("documents are JSON");
    }
});
