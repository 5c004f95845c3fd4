//! Fuzz target `config`: arbitrary bytes as the gateway YAML.
//!
//! Loading it (`Snapshot::parse`: the YAML validated with every endpoint's provider settings)
//! must never panic, whatever the text (invalid UTF-8 is replaced, as a lossy read would). An error must name the file first (`fuzz.yaml: …`); a configuration that
//! loads must resolve every endpoint and route by its name.

#![no_main]

use std::path::Path;

use aigw::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

const FILE: &str = "fuzz.yaml";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Snapshot::parse(&text, Path::new(FILE)).map(|s| s.config) {
        Ok(config) => {
            for e in &config.endpoints {
                assert!(config.endpoint(&e.name).is_some(), "endpoint {:?} not found by name", e.name);
            }
            for r in &config.routes {
                assert!(config.route(&r.name).is_some(), "route {:?} not found by name", r.name);
                assert!(!r.destinations.is_empty(), "route {:?} without destinations", r.name);
            }
            let _ = format!("{config:?}");
        }
        Err(e) => {
            assert_eq!(e.file, FILE);
            let shown = e.to_string();
            assert!(shown.starts_with(&format!("{FILE}: ")), "error does not start with the file: {shown}");
            assert!(!e.message.is_empty(), "empty error message: {shown}");
        }
    }
});
