//! `GET /v1/models` and `GET /v1/models/{model}` over fake-ollama's `/api/tags` and
//! `/api/show`, and model aliases end to end.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use common::{Harness, chat, chat_body, request, start_bridge};
use ollama_bridge::config::Config;
use ollama_bridge::fake_ollama::FakeOllama;
use serde_json::json;

/// `plain_stop`'s transcript date (2026-01-01T00:00:00Z) and the installed models' one
/// (2025-06-01T12:00:00.123456789+02:00), in Unix seconds.
const TRANSCRIPT_CREATED: i64 = 1_767_225_600;
const INSTALLED_CREATED: i64 = 1_748_772_000;

fn with_alias(config: &mut Config) {
    config
        .aliases
        .insert("gpt-4o-mini".to_owned(), "plain_stop".to_owned());
}

#[tokio::test]
async fn models_are_listed_with_their_aliases() {
    let h = Harness::start_with(with_alias).await;
    h.fake.install("acme/coder:7b");
    let reply = request(h.bridge, "GET", "/v1/models", "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let list = reply.json();
    assert_eq!(list["object"], "list");
    let data = list["data"].as_array().expect("data");
    let find = |id: &str| {
        data.iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {list}"))
            .clone()
    };
    assert_eq!(
        find("acme/coder:7b"),
        json!({"id": "acme/coder:7b", "object": "model", "created": INSTALLED_CREATED, "owned_by": "acme"})
    );
    assert_eq!(
        find("plain_stop"),
        json!({"id": "plain_stop", "object": "model", "created": TRANSCRIPT_CREATED, "owned_by": "library"})
    );
    assert_eq!(
        find("gpt-4o-mini"),
        json!({"id": "gpt-4o-mini", "object": "model", "created": TRANSCRIPT_CREATED, "owned_by": "library"})
    );
    assert_eq!(
        data.len(),
        common::chat_transcripts().len() + common::generate_transcripts().len() + 2,
        "every transcript, the installed model, the alias"
    );
    h.stop().await;
}

#[tokio::test]
async fn no_models_is_an_empty_list() {
    let fake = FakeOllama::start(Default::default()).await.expect("fake");
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".to_owned();
    config.upstream.url = fake.url();
    let (bridge, _stop, _server) = start_bridge(config).await;
    let reply = request(bridge, "GET", "/v1/models", "").await;
    assert_eq!(reply.json(), json!({"object": "list", "data": []}));
}

#[tokio::test]
async fn one_model_by_id_with_slashes_colons_and_aliases() {
    let h = Harness::start_with(with_alias).await;
    h.fake.install("acme/coder:7b");
    for path in ["/v1/models/acme/coder:7b", "/v1/models/acme%2Fcoder%3A7b"] {
        let reply = request(h.bridge, "GET", path, "").await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert_eq!(
            reply.json(),
            json!({"id": "acme/coder:7b", "object": "model", "created": INSTALLED_CREATED, "owned_by": "acme"})
        );
    }
    let alias = request(h.bridge, "GET", "/v1/models/gpt-4o-mini", "").await;
    assert_eq!(alias.json()["id"], "gpt-4o-mini");
    assert_eq!(alias.json()["created"], TRANSCRIPT_CREATED);

    let missing = request(h.bridge, "GET", "/v1/models/nope:latest", "").await;
    assert_eq!(missing.status, 404);
    let error = &missing.json()["error"];
    assert_eq!(error["type"], "not_found_error");
    assert_eq!(error["code"], "model_not_found");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("nope:latest"))
    );
    let wrong_method = request(h.bridge, "POST", "/v1/models", "").await;
    assert_eq!(wrong_method.status, 405);
    h.stop().await;
}

#[tokio::test]
async fn an_alias_reaches_its_target_and_is_reported_back() {
    let h = Harness::start_with(with_alias).await;
    for stream in [true, false] {
        let reply = chat(h.bridge, &chat_body("gpt-4o-mini", stream)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let upstream = h.fake.requests().last().cloned().expect("a request");
        assert_eq!(upstream.body["model"], "plain_stop");
        if stream {
            for data in reply.sse_data().iter().filter(|d| *d != "[DONE]") {
                let chunk: serde_json::Value = serde_json::from_str(data).expect("chunk");
                assert_eq!(chunk["model"], "gpt-4o-mini");
            }
        } else {
            assert_eq!(reply.json()["model"], "gpt-4o-mini");
        }
    }
    h.stop().await;
}
