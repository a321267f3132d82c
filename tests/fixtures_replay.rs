//! Every recorded `/api/chat` transcript is replayed by fake-ollama through the bridge, and
//! the whole OpenAI output is checked against frames derived from the transcript.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use common::{Harness, chat, chat_body, chat_transcripts};
use serde_json::{Value, json};

/// What the transcript says the client must see, derived line by line.
#[derive(Debug, Default)]
struct Expected {
    /// Deltas without `role`, in order.
    deltas: Vec<Value>,
    content: String,
    reasoning: String,
    /// (id, name, arguments object) per call.
    calls: Vec<(String, String, Value)>,
    finish_reason: &'static str,
    usage: Value,
}

fn expected(transcript: &[u8]) -> Expected {
    let mut e = Expected::default();
    for line in transcript.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let chunk: Value = serde_json::from_slice(line).expect("transcript line is JSON");
        let msg = &chunk["message"];
        let content = msg["content"].as_str().unwrap_or_default();
        let thinking = msg["thinking"].as_str().unwrap_or_default();
        let mut delta = serde_json::Map::new();
        if !thinking.is_empty() {
            delta.insert("reasoning_content".into(), json!(thinking));
        }
        if !content.is_empty() {
            delta.insert("content".into(), json!(content));
        }
        if !delta.is_empty() {
            e.deltas.push(Value::Object(delta));
        }
        e.content.push_str(content);
        e.reasoning.push_str(thinking);
        for call in msg["tool_calls"].as_array().into_iter().flatten() {
            let index = e.calls.len();
            let id = call["id"]
                .as_str()
                .expect("recorded calls have ids")
                .to_owned();
            let name = call["function"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let args = call["function"]["arguments"].clone();
            e.deltas.push(json!({"tool_calls":[{"index":index,"id":id,"type":"function","function":{"name":name,"arguments":""}}]}));
            e.deltas.push(
                json!({"tool_calls":[{"index":index,"function":{"arguments":args.to_string()}}]}),
            );
            e.calls.push((id, name, args));
        }
        if chunk["done"] == json!(true) {
            e.finish_reason = match chunk["done_reason"].as_str() {
                Some("length") => "length",
                _ if !e.calls.is_empty() => "tool_calls",
                _ => "stop",
            };
            let (p, c) = (
                chunk["prompt_eval_count"].as_u64().unwrap_or(0),
                chunk["eval_count"].as_u64().unwrap_or(0),
            );
            e.usage = json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
        }
    }
    e
}

#[tokio::test]
async fn every_transcript_streams_exactly() {
    let harness = Harness::start().await;
    let transcripts = chat_transcripts();
    assert_eq!(
        transcripts.len(),
        10,
        "fixtures missing: {:?}",
        transcripts.keys()
    );
    for (name, transcript) in &transcripts {
        let want = expected(transcript);
        let reply = chat(harness.bridge, &chat_body(name, true)).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.text());
        assert_eq!(reply.header("content-type"), Some("text/event-stream"));
        assert_eq!(reply.header("cache-control"), Some("no-cache"));
        assert_eq!(reply.header("x-accel-buffering"), Some("no"));
        assert!(
            reply
                .header("x-request-id")
                .is_some_and(|id| !id.is_empty())
        );

        let data = reply.sse_data();
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{name}");
        let frames: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).expect("JSON frame"))
            .collect();
        let (usage_frame, choice_frames) = frames.split_last().expect("frames");
        let id = frames[0]["id"].as_str().expect("id");
        assert!(id.starts_with("chatcmpl-"), "{id}");
        for f in &frames {
            assert_eq!(
                (f["id"].as_str(), f["object"].as_str(), f["model"].as_str()),
                (Some(id), Some("chat.completion.chunk"), Some(name.as_str()))
            );
            assert!(f["created"].as_u64().is_some() && f["system_fingerprint"].is_string());
        }
        // The usage chunk, after the finish chunk; every other chunk has usage null.
        assert_eq!(usage_frame["choices"], json!([]), "{name}");
        assert_eq!(usage_frame["usage"], want.usage, "{name}");
        let (finish, deltas) = choice_frames.split_last().expect("finish frame");
        assert_eq!(finish["choices"][0]["delta"], json!({}), "{name}");
        assert_eq!(
            finish["choices"][0]["finish_reason"],
            json!(want.finish_reason),
            "{name}"
        );
        assert_eq!(finish["usage"], Value::Null);
        // Role once, on the first chunk; then exactly the transcript's deltas, in order.
        let mut got = Vec::new();
        for (i, f) in deltas.iter().enumerate() {
            assert_eq!(f["usage"], Value::Null);
            let choice = &f["choices"][0];
            assert_eq!(
                (
                    choice["index"].clone(),
                    choice["finish_reason"].clone(),
                    choice["logprobs"].clone()
                ),
                (json!(0), Value::Null, Value::Null)
            );
            let mut delta = choice["delta"].as_object().expect("delta object").clone();
            assert_eq!(
                delta.remove("role").is_some(),
                i == 0,
                "{name}: role on chunk {i} only if first"
            );
            got.push(Value::Object(delta));
        }
        assert_eq!(got, want.deltas, "{name}");
        // Concatenations equal the upstream text.
        let cat = |key: &str| {
            got.iter()
                .filter_map(|d| d[key].as_str())
                .collect::<String>()
        };
        assert_eq!(cat("content"), want.content, "{name}");
        assert_eq!(cat("reasoning_content"), want.reasoning, "{name}");
        for (i, (_, _, args)) in want.calls.iter().enumerate() {
            let sent: String = got
                .iter()
                .flat_map(|d| d["tool_calls"].as_array().cloned().unwrap_or_default())
                .filter(|c| c["index"] == json!(i))
                .filter_map(|c| c["function"]["arguments"].as_str().map(str::to_owned))
                .collect();
            assert_eq!(
                &serde_json::from_str::<Value>(&sent).expect("arguments are JSON"),
                args,
                "{name}"
            );
        }
    }
    harness.stop().await;
}

#[tokio::test]
async fn every_transcript_aggregates_into_one_completion() {
    let harness = Harness::start().await;
    for (name, transcript) in &chat_transcripts() {
        let want = expected(transcript);
        let reply = chat(harness.bridge, &chat_body(name, false)).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.text());
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let body = reply.json();
        assert_eq!(
            (body["object"].as_str(), body["model"].as_str()),
            (Some("chat.completion"), Some(name.as_str()))
        );
        let choice = &body["choices"][0];
        let message = &choice["message"];
        assert_eq!(message["role"], "assistant");
        assert_eq!(message["content"], json!(want.content), "{name}");
        if want.reasoning.is_empty() {
            assert!(message.get("reasoning_content").is_none(), "{name}");
        } else {
            assert_eq!(
                message["reasoning_content"],
                json!(want.reasoning),
                "{name}"
            );
        }
        let calls: Vec<(String, String, Value)> = message["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                assert_eq!(c["type"], "function");
                let args = serde_json::from_str(
                    c["function"]["arguments"]
                        .as_str()
                        .expect("arguments string"),
                )
                .expect("JSON");
                (
                    c["id"].as_str().unwrap_or_default().to_owned(),
                    c["function"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    args,
                )
            })
            .collect();
        assert_eq!(calls, want.calls, "{name}");
        assert_eq!(choice["finish_reason"], json!(want.finish_reason), "{name}");
        assert_eq!(body["usage"], want.usage, "{name}");
    }
    harness.stop().await;
}

#[tokio::test]
async fn byte_by_byte_upstream_reads_give_the_same_stream() {
    let harness = Harness::start().await;
    for name in [
        "plain_stop",
        "tool_think",
        "public-ollama-0.35.1-qwen3-think-abridged",
    ] {
        let mut outputs = Vec::new();
        for split in ["", "?chunk_bytes=1", "?chunk_bytes=7"] {
            let reply = chat(harness.bridge, &chat_body(&format!("{name}{split}"), true)).await;
            assert_eq!(reply.status, 200);
            let frames: Vec<Value> = reply
                .sse_data()
                .iter()
                .map(|d| {
                    let mut v: Value = serde_json::from_str(d).unwrap_or(json!(d));
                    if let Some(o) = v.as_object_mut() {
                        o.remove("id");
                        o.remove("created");
                        o.remove("model");
                    }
                    v
                })
                .collect();
            outputs.push(frames);
        }
        assert_eq!(outputs[0], outputs[1], "{name}: byte-split differs");
        assert_eq!(outputs[0], outputs[2], "{name}: 7-byte split differs");
    }
    harness.stop().await;
}
