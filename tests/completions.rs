//! `POST /v1/completions` over fake-ollama's `/api/generate`, over real sockets: streamed
//! and whole, several prompts and `n`, `echo`, `logprobs`, a recorded transcript, and the
//! bad-input 400s.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use common::{Harness, Reply, request, seeded_synth_text, sse_chunks, synth_text};
use serde_json::{Value, json};

async fn complete(h: &Harness, body: &Value) -> Reply {
    request(h.bridge, "POST", "/v1/completions", &body.to_string()).await
}

/// The text of every choice of a stream, by index, and each choice's finish reasons.
fn by_choice(chunks: &[Value]) -> Vec<(String, Vec<String>)> {
    let mut choices: Vec<(String, Vec<String>)> = Vec::new();
    for chunk in chunks {
        for choice in chunk["choices"].as_array().expect("choices") {
            let index = choice["index"].as_u64().expect("index") as usize;
            if choices.len() <= index {
                choices.resize(index + 1, (String::new(), Vec::new()));
            }
            choices[index].0 += choice["text"].as_str().expect("text");
            if let Some(reason) = choice["finish_reason"].as_str() {
                choices[index].1.push(reason.to_owned());
            }
        }
    }
    choices
}

#[tokio::test]
async fn streams_text_completion_chunks_with_usage() {
    let h = Harness::start().await;
    let body = json!({"model": "synth?tokens=5", "prompt": "Once upon", "stream": true,
        "stream_options": {"include_usage": true}, "suffix": "the end", "stop": ["\n\n"],
        "temperature": 0.2, "seed": 9});
    let reply = complete(&h, &body).await;
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let chunks = sse_chunks(&reply);
    let (usage, chunks) = chunks.split_last().expect("chunks");
    let id = chunks[0]["id"].as_str().expect("id");
    assert!(id.starts_with("cmpl-"), "{id}");
    for chunk in chunks {
        assert_eq!(chunk["object"], "text_completion");
        assert_eq!(chunk["id"], id);
        assert_eq!(chunk["model"], "synth?tokens=5");
        assert_eq!(chunk["usage"], Value::Null);
        assert_eq!(chunk["choices"][0]["logprobs"], Value::Null);
    }
    assert_eq!(
        by_choice(chunks),
        vec![(seeded_synth_text(9, 5), vec!["stop".to_owned()])]
    );
    let last = &chunks[chunks.len() - 1]["choices"][0];
    assert_eq!(
        (last["text"].as_str(), last["finish_reason"].as_str()),
        (Some(""), Some("stop"))
    );
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
    );
    let sent = h
        .fake
        .last_request("synth")
        .expect("request reached fake-ollama");
    assert_eq!(
        sent.body,
        json!({"model": "synth?tokens=5", "prompt": "Once upon", "suffix": "the end",
            "stream": true, "options": {"temperature": 0.2, "num_predict": 16,
            "stop": ["\n\n"], "seed": 9}})
    );
    h.stop().await;
}

#[tokio::test]
async fn whole_response_with_echo_and_length() {
    let h = Harness::start().await;
    let body = json!({"model": "synth?tokens=3&done_reason=length", "prompt": "Say:",
        "echo": true, "max_tokens": 3});
    let reply = complete(&h, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["object"], "text_completion");
    assert!(json["id"].as_str().expect("id").starts_with("cmpl-"));
    assert_eq!(
        json["choices"],
        json!([{"text": format!("Say:{}", synth_text(3)), "index": 0, "logprobs": null,
            "finish_reason": "length"}])
    );
    assert_eq!(
        json["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13})
    );
    let sent = h.fake.last_request("synth").expect("request");
    assert_eq!(sent.body["options"]["num_predict"], 3);
    h.stop().await;
}

#[tokio::test]
async fn prompts_and_n_fan_out_prompt_major_with_usage_counting_each_prompt_once() {
    let h = Harness::start().await;
    let body = json!({"model": "synth?tokens=4", "prompt": ["a", "b"], "n": 2, "seed": 1});
    let reply = complete(&h, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let json = reply.json();
    let texts: Vec<(u64, &str)> = json["choices"]
        .as_array()
        .expect("choices")
        .iter()
        .map(|c| {
            (
                c["index"].as_u64().expect("index"),
                c["text"].as_str().expect("text"),
            )
        })
        .collect();
    let (one, two) = (seeded_synth_text(1, 4), seeded_synth_text(2, 4));
    assert_eq!(texts, vec![(0, &*one), (1, &*two), (2, &*one), (3, &*two)]);
    assert_eq!(
        json["usage"],
        json!({"prompt_tokens": 20, "completion_tokens": 16, "total_tokens": 36})
    );
    let mut sent: Vec<String> = h
        .fake
        .requests()
        .iter()
        .map(|r| r.body.to_string())
        .collect();
    sent.sort();
    let want = |prompt: &str, seed: u8| {
        json!({"model": "synth?tokens=4", "prompt": prompt, "stream": true,
            "options": {"num_predict": 16, "seed": seed}})
        .to_string()
    };
    let mut wanted = vec![want("a", 1), want("a", 2), want("b", 1), want("b", 2)];
    wanted.sort();
    assert_eq!(sent, wanted);
    h.stop().await;
}

#[tokio::test]
async fn streamed_choices_of_several_prompts_each_finish() {
    let h = Harness::start().await;
    let body = json!({"model": "synth?tokens=6&rate=200", "prompt": ["a", "b", "c"],
        "stream": true, "seed": 4});
    let chunks = sse_chunks(&complete(&h, &body).await);
    let want: Vec<(String, Vec<String>)> = (0..3)
        .map(|_| (seeded_synth_text(4, 6), vec!["stop".to_owned()]))
        .collect();
    assert_eq!(by_choice(&chunks), want);
    h.stop().await;
}

#[tokio::test]
async fn logprobs_in_the_completions_shape() {
    let h = Harness::start().await;
    let body = json!({"model": "synth?tokens=2", "prompt": "x", "logprobs": 2});
    let json = complete(&h, &body).await.json();
    assert_eq!(
        json["choices"][0]["logprobs"],
        json!({"tokens": ["w0 ", "w1 "], "token_logprobs": [-0.125, -0.25],
            "top_logprobs": [{"w0 ": -0.125, "alt1": -1.125}, {"w1 ": -0.25, "alt1": -1.25}],
            "text_offset": [0, 3]})
    );
    let sent = h.fake.last_request("synth").expect("request");
    assert_eq!(
        (
            sent.body["logprobs"].clone(),
            sent.body["top_logprobs"].clone()
        ),
        (json!(true), json!(2))
    );
    let body = json!({"model": "synth?tokens=2", "prompt": "x", "logprobs": 0, "stream": true});
    let chunks = sse_chunks(&complete(&h, &body).await);
    assert_eq!(
        chunks[1]["choices"][0]["logprobs"],
        json!({"tokens": ["w1 "], "token_logprobs": [-0.25], "top_logprobs": [{}],
            "text_offset": [3]})
    );
    h.stop().await;
}

#[tokio::test]
async fn replays_ollamas_documented_generate_stream() {
    let h = Harness::start().await;
    let model = "ollama-docs-streaming-generate-example";
    let body = json!({"model": model, "prompt": "Why?", "stream": true});
    let chunks = sse_chunks(&complete(&h, &body).await);
    assert_eq!(
        by_choice(&chunks),
        vec![(
            "That's a fantastic question!".to_owned(),
            vec!["stop".to_owned()]
        )]
    );
    // The last line carries text and `done` together: one chunk with both.
    let last = &chunks[chunks.len() - 1]["choices"][0];
    assert_eq!(
        (last["text"].as_str(), last["finish_reason"].as_str()),
        (Some("!"), Some("stop"))
    );
    let whole = complete(&h, &json!({"model": model, "prompt": "Why?"}))
        .await
        .json();
    assert_eq!(whole["choices"][0]["text"], "That's a fantastic question!");
    h.stop().await;
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_nothing_reaches_ollama() {
    let h = Harness::start().await;
    let cases = [
        (json!({"model": "synth", "prompt": [1, 2, 3]}), "prompt"),
        (json!({"model": "synth", "prompt": [[1, 2]]}), "prompt"),
        (json!({"model": "synth", "prompt": ""}), "prompt"),
        (json!({"model": "synth", "prompt": ["a", 5]}), "prompt"),
        (json!({"model": "synth"}), "prompt"),
        (json!({"prompt": "a"}), "model"),
        (json!({"model": "synth", "prompt": "a", "n": 0}), "n"),
        (json!({"model": "synth", "prompt": "a", "n": 17}), "n"),
        (
            json!({"model": "synth", "prompt": "a", "best_of": 2}),
            "best_of",
        ),
        (
            json!({"model": "synth", "prompt": "a", "logprobs": 6}),
            "logprobs",
        ),
        (
            json!({"model": "synth", "prompt": "a", "top_p": 2}),
            "top_p",
        ),
        (
            json!({"model": "synth", "prompt": "a", "stream": "yes"}),
            "stream",
        ),
    ];
    for (body, param) in cases {
        let reply = complete(&h, &body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        let error = &reply.json()["error"];
        assert_eq!(error["type"], "invalid_request_error", "{body}");
        assert_eq!(error["param"], param, "{body}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let token_arrays = complete(&h, &json!({"model": "synth", "prompt": [1]}))
        .await
        .json();
    let message = token_arrays["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("token arrays are not supported"),
        "{message}"
    );
    assert!(h.fake.requests().is_empty());
    let missing = complete(&h, &json!({"model": "nope", "prompt": "a"})).await;
    assert_eq!(missing.status, 404, "{}", missing.text());
    h.stop().await;
}

#[tokio::test]
async fn a_completion_with_two_choices_is_measured_once_with_both_choices_tokens() {
    use common::scrape::{parse, sum};
    let h = Harness::start().await;
    let model = "synth?tokens=3&rate=200";
    let body = json!({"model": model, "prompt": "a", "n": 2, "stream": true});
    sse_chunks(&complete(&h, &body).await);
    let m = parse(&request(h.bridge, "GET", "/metrics", "").await.text());
    let operation = ("gen_ai_operation_name", "text_completion");
    let requests = [("endpoint", "/v1/completions"), ("status_class", "2xx")];
    assert_eq!(sum(&m, "ollama_bridge_requests_total", &requests), 1.0);
    let output = [operation, ("gen_ai_token_type", "output")];
    assert_eq!(sum(&m, "gen_ai_client_token_usage_sum", &output), 6.0);
    let ttft = "gen_ai_server_time_to_first_token_seconds_count";
    assert_eq!(sum(&m, ttft, &[operation]), 1.0);
    assert_eq!(sum(&m, "ollama_bridge_active_streams", &[]), 0.0);
    h.stop().await;
}
