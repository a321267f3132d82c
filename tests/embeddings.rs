//! `POST /v1/embeddings` over fake-ollama's `/api/embed`: float and base64, `dimensions`,
//! usage, aliases, and OpenAI-shaped 400s naming the field.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use base64::Engine;
use common::{Harness, Reply, request};
use ollama_bridge::fake_ollama::catalog::vector;
use serde_json::{Value, json};

async fn embed(h: &Harness, body: &Value) -> Reply {
    request(h.bridge, "POST", "/v1/embeddings", &body.to_string()).await
}

#[tokio::test]
async fn floats_come_back_in_input_order_with_usage() {
    let h = Harness::start().await;
    let reply = embed(
        &h,
        &json!({"model": "synth", "input": ["hello world", "second"]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "synth");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 3, "total_tokens": 3})
    );
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    for (i, text) in ["hello world", "second"].into_iter().enumerate() {
        assert_eq!(data[i]["object"], "embedding");
        assert_eq!(data[i]["index"], i);
        assert_eq!(data[i]["embedding"], json!(vector(text, 8)));
    }
    let upstream = h.fake.requests().last().cloned().expect("upstream request");
    assert_eq!(
        upstream.body,
        json!({"model": "synth", "input": ["hello world", "second"]})
    );
    h.stop().await;
}

#[tokio::test]
async fn base64_is_the_little_endian_f32_bytes() {
    let h = Harness::start().await;
    let body = json!({"model": "synth", "input": "one text", "encoding_format": "base64"});
    let reply = embed(&h, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.json()["data"][0]["embedding"]
        .as_str()
        .expect("a base64 string")
        .to_owned();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64");
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let want: Vec<f32> = vector("one text", 8)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    assert_eq!(floats, want);
    h.stop().await;
}

#[tokio::test]
async fn dimensions_reach_ollama_and_aliases_resolve() {
    let h = Harness::start_with(|c| {
        c.aliases
            .insert("text-embedding-3-small".to_owned(), "synth".to_owned());
    })
    .await;
    let body = json!({"model": "text-embedding-3-small", "input": "x", "dimensions": 4});
    let reply = embed(&h, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["model"], "text-embedding-3-small");
    assert_eq!(reply.json()["data"][0]["embedding"], json!(vector("x", 4)));
    let upstream = h.fake.requests().last().cloned().expect("upstream request");
    assert_eq!(
        upstream.body,
        json!({"model": "synth", "input": ["x"], "dimensions": 4})
    );
    h.stop().await;
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field() {
    let h = Harness::start().await;
    let cases = [
        (json!({"model": "synth", "input": [1, 2, 3]}), "input"),
        (json!({"model": "synth", "input": [[1, 2], [3]]}), "input"),
        (json!({"model": "synth", "input": []}), "input"),
        (json!({"model": "synth", "input": ["a", ""]}), "input[1]"),
        (json!({"model": "synth", "input": ["a", 7.5]}), "input"),
        (json!({"model": "synth", "input": ["a", null]}), "input[1]"),
        (json!({"model": "synth"}), "input"),
        (json!({"input": "a"}), "model"),
        (
            json!({"model": "synth", "input": "a", "encoding_format": "hex"}),
            "encoding_format",
        ),
        (
            json!({"model": "synth", "input": "a", "dimensions": 0}),
            "dimensions",
        ),
        (
            json!({"model": "synth", "input": "a", "dimensions": "4"}),
            "dimensions",
        ),
    ];
    for (body, param) in cases {
        let reply = embed(&h, &body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        let error = &reply.json()["error"];
        assert_eq!(error["type"], "invalid_request_error", "{body}");
        assert_eq!(error["param"], param, "{body}: {error}");
    }
    assert!(
        h.fake.requests().is_empty(),
        "nothing invalid reached Ollama"
    );
    let unknown = embed(&h, &json!({"model": "nope", "input": "a"})).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["type"], "not_found_error");
    h.stop().await;
}
