//! A published xAPI client against the LRS: TinCanPython (`tincan` from PyPI) saves,
//! reads, queries, pages and voids statements with an LRS credential, and the
//! statements it sent move the learners' enrolments. The harness installs the library
//! when it is missing (`.ci/run` installs it too).

mod common;

use chrono::Duration;
use common::TestApp;
use serde_json::{Value, json};
use std::process::Command;

const CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/xapi_client/tincan_client.py"
);

fn ensure_tincan() {
    let have = |_: ()| {
        Command::new("python3")
            .args(["-c", "import tincan"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if have(()) {
        return;
    }
    let installed = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--root-user-action=ignore",
            "tincan",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        installed && have(()),
        "could not install TinCanPython (python3 -m pip install tincan)"
    );
}

#[tokio::test]
async fn tincan_python_talks_to_the_lrs() {
    ensure_tincan();
    let app = TestApp::spawn().await;
    for email in ["ana@acme.example", "bob@acme.example"] {
        app.create_user(&json!({ "email": email })).await;
    }
    let content = app
        .get(&app.admin, "/api/content?per_page=500")
        .await
        .expect(200);
    let ids: Vec<i64> = content["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["slug"] == "password-management" || c["slug"] == "acceptable-use")
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    app.post_json(
        &app.admin,
        "/api/campaigns",
        &json!({"name": "Both", "content": ids, "groups": [0]}),
    )
    .await
    .expect(201);
    app.clock.advance(Duration::hours(2));
    let credential = app
        .post_json(
            &app.admin,
            "/api/xapi/credentials",
            &json!({"name": "Moodle"}),
        )
        .await
        .expect(201);
    let key = credential["data"]["credential"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = credential["data"]["secret"].as_str().unwrap().to_owned();
    let endpoint = app.url("/xapi/");

    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([CLIENT, &endpoint, &key, &secret])
            .output()
            .expect("run python3")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the client failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert!(
        seen["versions"]
            .as_array()
            .unwrap()
            .contains(&json!("1.0.3"))
    );
    assert_eq!(seen["saved_id"], true);
    assert_eq!(seen["batch_ids"], 3);
    assert_eq!(
        seen["read_back_verb"],
        "http://adlnet.gov/expapi/verbs/completed"
    );
    assert!(seen["authority"].as_str().unwrap().starts_with("lrs_"));
    assert_eq!(seen["pages_of_ana"], json!([2, 1]));
    assert_eq!(seen["voided_verb"], "http://adlnet.gov/expapi/verbs/passed");
    assert_eq!(seen["voided_by_id_status"], 404);

    // What the client sent moved the enrolments: Ana finished the policy; Bob's pass
    // was voided, so his module is open again.
    let enrollments = app
        .get(&app.admin, "/api/enrollments?per_page=100")
        .await
        .expect(200);
    let status = |email: &str, slug_word: &str| {
        enrollments["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["email"] == email && e["content_title"].as_str().unwrap().contains(slug_word)
            })
            .map(|e| e["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(status("ana@acme.example", "Acceptable"), "Completed");
    assert_eq!(status("ana@acme.example", "Password"), "In Progress");
    assert_eq!(status("bob@acme.example", "Password"), "In Progress");
}
