//! The checked-in OpenAPI document (docs/openapi.json) must be what the code generates.

use std::path::Path;

#[test]
fn checked_in_openapi_matches_the_code() {
    let generated = coachloop_server::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
        + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("docs/openapi.json is writable");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        generated == checked_in,
        "docs/openapi.json differs from what the code generates; \
         run `UPDATE_OPENAPI=1 cargo test -p coachloop-server --test openapi` and commit it"
    );
}

#[test]
fn every_operation_documents_its_errors() {
    let doc = serde_json::to_value(coachloop_server::openapi()).expect("serializes");
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let responses = op["responses"].as_object().expect("responses");
            let authenticated = op.get("security").is_some();
            if authenticated {
                for status in ["401", "403", "503"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} does not document {status}"
                    );
                }
            }
        }
    }
}
