//! The fuzz targets' properties (`tests/props`), run by proptest in CI: arbitrary upstream
//! bytes and fixture transcripts with bytes changed go through the NDJSON framer and the chat
//! transcoder; arbitrary and near-valid request bodies go through the request parser and
//! mapper.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;
mod props;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value, json};

fn transcripts() -> Vec<Bytes> {
    let mut all: Vec<(String, Bytes)> = common::chat_transcripts().into_iter().collect();
    all.sort();
    all.into_iter().map(|(_, body)| body).collect()
}

/// Bytes that look like upstream output: JSON-ish punctuation, keys, UTF-8 fragments.
fn upstream_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"{\"message\":{\"role\":\"assistant\",\"content\":\"".to_vec()),
        Just(b"\"},\"done\":false}\n".to_vec()),
        Just(b"{\"message\":{\"content\":\"\"},\"done\":true,\"eval_count\":3}\n".to_vec()),
        Just(b"\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":{}}}]".to_vec()),
        Just(b"\"thinking\":\"".to_vec()),
        Just(b"{\"error\":\"x\"}\n".to_vec()),
        Just(b"\\u00e9\\\"\\n".to_vec()),
        Just(vec![0xc3, 0xa9, 0xff, 0xe2, 0x82]),
        Just(b"\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_upstream_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        props::check_upstream_bytes(&data);
    }

    #[test]
    fn upstream_like_bytes(data in upstream_like()) {
        props::check_upstream_bytes(&data);
    }

    #[test]
    fn transcripts_with_bytes_changed(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let all = transcripts();
        let mut data = all[which.index(all.len())].to_vec();
        for (at, byte) in edits {
            let i = at.index(data.len());
            data[i] = byte;
        }
        props::check_upstream_bytes(&data);
    }
}

/// JSON values of every kind, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(field(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names of OpenAI's requests and messages, and some that are none.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "model",
            "messages",
            "role",
            "content",
            "stream",
            "stream_options",
            "include_usage",
            "temperature",
            "top_p",
            "max_tokens",
            "max_completion_tokens",
            "stop",
            "seed",
            "n",
            "frequency_penalty",
            "presence_penalty",
            "response_format",
            "type",
            "json_schema",
            "schema",
            "tools",
            "function",
            "name",
            "arguments",
            "parameters",
            "tool_choice",
            "tool_calls",
            "tool_call_id",
            "id",
            "reasoning_effort",
            "logprobs",
            "top_logprobs",
            "image_url",
            "url",
            "text",
            "prompt",
            "suffix",
            "echo",
            "best_of",
            "user",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,8}",
    ]
}

/// Requests that are valid but for one field set to any JSON value.
fn near_valid_request() -> impl Strategy<Value = Value> {
    let base = json!({
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "prompt": "hi",
        "stream": true,
    });
    (field(), any_json(), any::<bool>()).prop_map(move |(key, value, nested)| {
        let mut body = base.clone();
        if nested {
            body["messages"][0][key] = value;
        } else {
            body[key] = value;
        }
        body
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_request_bytes(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        props::check_request_body(&body);
    }

    #[test]
    fn arbitrary_request_json(body in any_json()) {
        props::check_request_body(body.to_string().as_bytes());
    }

    #[test]
    fn near_valid_requests(body in near_valid_request()) {
        props::check_request_body(body.to_string().as_bytes());
    }
}

#[test]
fn every_fuzz_seed_holds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut seen = 0;
    for (dir, check) in [
        ("upstream_ndjson", props::check_upstream_bytes as fn(&[u8])),
        ("request_body", props::check_request_body),
    ] {
        for entry in std::fs::read_dir(root.join(dir)).expect("committed seed corpus") {
            let data = std::fs::read(entry.expect("entry").path()).expect("seed");
            check(&data);
            seen += 1;
        }
    }
    assert!(seen >= 10, "the seed corpora hold {seen} files");
}
