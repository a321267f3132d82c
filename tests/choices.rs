//! `n` > 1 for chat completions, over real sockets: one upstream generation per choice, run
//! concurrently; streamed chunks interleave with their `choices[].index`, every choice ends
//! with its own finish chunk, usage sums; a failing choice ends the stream with one error
//! event and closes the others.

#![expect(
    clippy::expect_used,
    reason = "integration tests: a failed step stops the test with its reason"
)]

mod common;

use std::time::Duration;

use common::{Harness, chat, chat_body, seeded_synth_text, sse_chunks};
use serde_json::{Value, json};

#[tokio::test]
async fn three_streamed_choices_interleave_and_each_finishes() {
    let h = Harness::start().await;
    let mut body = chat_body("synth?tokens=8&rate=100", true);
    body["n"] = json!(3);
    body["seed"] = json!(40);
    let chunks = sse_chunks(&chat(h.bridge, &body).await);
    let (usage, chunks) = chunks.split_last().expect("chunks");
    let mut order = Vec::new();
    let mut content = vec![String::new(); 3];
    let mut roles = [0; 3];
    let mut finishes: Vec<Vec<String>> = vec![Vec::new(); 3];
    for chunk in chunks {
        let choices = chunk["choices"].as_array().expect("choices");
        assert_eq!(choices.len(), 1, "one choice per chunk: {chunk}");
        let choice = &choices[0];
        let index = choice["index"].as_u64().expect("index") as usize;
        assert!(
            finishes[index].is_empty(),
            "chunk after choice {index} finished"
        );
        order.push(index);
        let delta = &choice["delta"];
        if delta["role"] == "assistant" {
            assert_eq!(content[index], "", "role comes first");
            roles[index] += 1;
        }
        content[index] += delta["content"].as_str().unwrap_or_default();
        if let Some(reason) = choice["finish_reason"].as_str() {
            assert_eq!(delta, &json!({}), "the finish chunk is empty");
            finishes[index].push(reason.to_owned());
        }
    }
    for i in 0..3 {
        assert_eq!(
            content[i],
            seeded_synth_text(40 + i as i64, 8),
            "choice {i}"
        );
        assert_eq!(roles[i], 1, "choice {i}");
        assert_eq!(finishes[i], vec!["stop".to_owned()], "choice {i}");
    }
    let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        switches > 3,
        "choices arrive interleaved, not one after another: {order:?}"
    );
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 24, "total_tokens": 34})
    );
    let seeds: Vec<i64> = {
        let mut s: Vec<i64> = h
            .fake
            .requests()
            .iter()
            .map(|r| r.body["options"]["seed"].as_i64().expect("seed"))
            .collect();
        s.sort_unstable();
        s
    };
    assert_eq!(
        seeds,
        vec![40, 41, 42],
        "each choice its own generation and seed"
    );
    h.stop().await;
}

#[tokio::test]
async fn whole_response_has_n_choices_and_summed_usage() {
    let h = Harness::start().await;
    let mut body = chat_body("synth?tokens=3", false);
    body["n"] = json!(2);
    let reply = chat(h.bridge, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let json = reply.json();
    let choices = json["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 2);
    for (i, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], i);
        assert_eq!(choice["message"]["content"], "w0 w1 w2 ");
        assert_eq!(choice["finish_reason"], "stop");
    }
    assert_eq!(
        json["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16})
    );
    h.stop().await;
}

#[tokio::test]
async fn a_failing_choice_ends_the_stream_with_one_error_event_and_closes_the_others() {
    let h = Harness::start().await;
    // Only choice 1 (seed 0 + 1) fails, after 3 tokens; the others would run for 500 ms.
    let model = "synth?tokens=50&rate=100&error_after=3&fault_seed=1";
    let mut body = chat_body(model, true);
    body["n"] = json!(3);
    body["seed"] = json!(0);
    let reply = chat(h.bridge, &body).await;
    assert_eq!(reply.status, 200);
    let data = reply.sse_data();
    let errors: Vec<&String> = data.iter().filter(|d| d.contains("\"error\"")).collect();
    assert_eq!(errors.len(), 1, "{data:?}");
    assert_eq!(
        data.last(),
        errors.last().copied(),
        "the error event is last"
    );
    assert!(!data.iter().any(|d| d == "[DONE]"));
    let error: Value = serde_json::from_str(errors[0]).expect("JSON");
    assert_eq!(error["error"]["code"], "upstream_error");
    // The partial text that was streamed stays in the response.
    assert!(data.iter().any(|d| d.contains("w0 ")), "{data:?}");
    assert!(
        !data.iter().any(|d| d.contains("w49 ")),
        "the stream ended early"
    );
    // The two choices still generating are closed; the failed one's body had ended (its
    // connection may go back to the pool).
    let records = h.fake.requests();
    assert_eq!(records.len(), 3);
    for record in records.iter().filter(|r| r.body["options"]["seed"] != 1) {
        assert!(
            record.wait_closed(Duration::from_secs(1)).await.is_some(),
            "a choice still generating was closed"
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn n_outside_the_limit_is_a_400() {
    let h = Harness::start_with(|c| c.openai.max_choices = 4).await;
    for n in [0, 5] {
        let mut body = chat_body("synth", true);
        body["n"] = json!(n);
        let reply = chat(h.bridge, &body).await;
        assert_eq!(reply.status, 400, "{}", reply.text());
        assert_eq!(reply.json()["error"]["param"], "n");
    }
    assert!(h.fake.requests().is_empty());
    h.stop().await;
}
