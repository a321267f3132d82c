use super::*;
use crate::openai::sse::ChunkObject;

const HEAD: &str = r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","system_fingerprint":"fp_ollama","choices":["#;

fn frames(include_usage: bool) -> ChunkFrames {
    ChunkFrames::new(
        ChunkObject::ChatCompletionChunk,
        "chatcmpl-1",
        7,
        "m",
        include_usage,
    )
}

fn stream(include_usage: bool, logprobs: bool) -> ChatStream {
    ChatStream::new(
        frames(include_usage),
        logprobs,
        ReasoningField::ReasoningContent,
    )
}

/// Feeds `lines`; after the `done` line, ends the stream as a one-choice response does.
fn run(chat: &mut ChatStream, lines: &[&str]) -> (String, Vec<Result<Step, StreamFailure>>) {
    let mut out = BytesMut::new();
    let steps = lines
        .iter()
        .map(|l| {
            let step = chat.on_line(l.as_bytes(), &mut out);
            if let Ok(Step::Done(stats)) = step {
                chat.end_stream(stats.usage(), &mut out);
            }
            step
        })
        .collect();
    (String::from_utf8_lossy(&out).into_owned(), steps)
}

fn choice(delta: &str, finish: &str) -> String {
    format!(r#"{HEAD}{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]}}"#)
        + "\n\n"
}

#[test]
fn text_stream_is_exact_on_the_wire() {
    let mut chat = stream(false, false);
    let (out, steps) = run(
        &mut chat,
        &[
            r#"{"message":{"role":"assistant","content":"Hi \u003c"},"done":false}"#,
            r#"{"message":{"role":"assistant","content":""},"done":false}"#,
            r#"{"message":{"role":"assistant","content":"!"},"done":false}"#,
            r#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":2}"#,
        ],
    );
    let want = [
        choice(r#"{"role":"assistant","content":"Hi \u003c"}"#, "null"),
        choice(r#"{"content":"!"}"#, "null"),
        choice("{}", r#""stop""#),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    assert_eq!(out, want);
    let stats = FinalStats {
        prompt_eval_count: Some(3),
        eval_count: Some(2),
        ..FinalStats::default()
    };
    assert_eq!(
        steps,
        vec![
            Ok(Step::Delta),
            Ok(Step::Quiet),
            Ok(Step::Delta),
            Ok(Step::Done(stats))
        ]
    );
    assert!(chat.is_ended());
}

#[test]
fn usage_chunk_and_null_usage_on_every_chunk() {
    let mut chat = stream(true, false);
    let (out, _) = run(
        &mut chat,
        &[
            r#"{"message":{"content":""},"done":true,"done_reason":"length","prompt_eval_count":4,"eval_count":1}"#,
        ],
    );
    let tail = "],\"usage\":null}\n\n";
    let want = [
        format!(r#"{HEAD}{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}{tail}"#),
        format!(r#"{HEAD}{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"length"}}{tail}"#),
        format!("{HEAD}],\"usage\":{{\"prompt_tokens\":4,\"completion_tokens\":1,\"total_tokens\":5}}}}\n\n"),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    assert_eq!(out, want);
}

#[test]
fn tool_calls_are_header_then_arguments_with_indexes_across_the_response() {
    let mut chat = stream(false, false);
    let (out, _) = run(
        &mut chat,
        &[
            r#"{"message":{"content":"","tool_calls":[{"id":"call_a","function":{"index":0,"name":"f","arguments":{"x":"a\"b"}}}]},"done":false}"#,
            r#"{"message":{"content":"","tool_calls":[{"function":{"name":"g","arguments":{}}}]},"done":false}"#,
            r#"{"message":{"content":""},"done":true,"done_reason":"stop"}"#,
        ],
    );
    let frames: Vec<&str> = out.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.len(), 6);
    assert_eq!(frames[0], choice(r#"{"role":"assistant","tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]}"#, "null").trim_end());
    assert_eq!(
        frames[1],
        choice(
            r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":\"a\\\"b\"}"}}]}"#,
            "null"
        )
        .trim_end()
    );
    assert!(
        frames[2].contains(r#""tool_calls":[{"index":1,"id":"call_"#),
        "{}",
        frames[2]
    );
    assert!(
        frames[3].contains(r#"{"index":1,"function":{"arguments":"{}"}}"#),
        "{}",
        frames[3]
    );
    assert!(frames[4].contains(r#""finish_reason":"tool_calls""#));
}

#[test]
fn reasoning_goes_to_the_configured_fields() {
    let mut chat = ChatStream::new(frames(false), false, ReasoningField::Both);
    let (out, _) = run(
        &mut chat,
        &[r#"{"message":{"content":"","thinking":"hm"},"done":false}"#],
    );
    assert_eq!(
        out,
        choice(
            r#"{"role":"assistant","reasoning_content":"hm","reasoning":"hm"}"#,
            "null"
        )
    );
}

#[test]
fn logprobs_pass_through_only_when_asked() {
    let line = r#"{"message":{"content":"a"},"logprobs":[{"token":"a","logprob":-0.5,"bytes":[97],"top_logprobs":[]}],"done":false}"#;
    let (out, _) = run(&mut stream(false, true), &[line]);
    assert!(out.contains(r#""logprobs":{"content":[{"token":"a","logprob":-0.5,"bytes":[97],"top_logprobs":[]}],"refusal":null}"#), "{out}");
    let (out, _) = run(&mut stream(false, false), &[line]);
    assert!(out.contains(r#""logprobs":null"#));
}

#[test]
fn finish_reason_stays_in_openais_set() {
    for (done_reason, want) in [
        ("stop", "stop"),
        ("length", "length"),
        ("load", "stop"),
        ("unload", "stop"),
    ] {
        let line =
            format!(r#"{{"message":{{"content":"x"}},"done":true,"done_reason":"{done_reason}"}}"#);
        let (out, _) = run(&mut stream(false, false), &[&line]);
        assert!(
            out.contains(&format!(r#""finish_reason":"{want}""#)),
            "{done_reason}: {out}"
        );
    }
}

#[test]
fn error_and_malformed_lines_fail_with_one_event() {
    let mut chat = stream(false, false);
    let (_, steps) = run(&mut chat, &[r#"{"error":"boom"}"#]);
    assert_eq!(steps, vec![Err(StreamFailure::Upstream("boom".to_owned()))]);
    for bad in [
        r#"{"message":{"content":5},"done":false}"#,
        "{not json",
        r#"[1]"#,
    ] {
        let (_, steps) = run(&mut stream(false, false), &[bad]);
        assert!(
            matches!(steps[0], Err(StreamFailure::Malformed(_))),
            "{bad}: {steps:?}"
        );
    }
    let mut out = BytesMut::new();
    chat.fail(&StreamFailure::Upstream("boom".to_owned()), &mut out);
    chat.fail(&StreamFailure::Upstream("again".to_owned()), &mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "data: {\"error\":{\"message\":\"upstream error: boom\",\"type\":\"api_error\",\"param\":null,\"code\":\"upstream_error\"}}\n\n"
    );
}

#[test]
fn invalid_utf8_in_a_string_is_a_malformed_line() {
    let mut out = BytesMut::new();
    let line = b"{\"message\":{\"content\":\"a\xff\"},\"done\":false}";
    let step = stream(false, false).on_line(line, &mut out);
    assert!(matches!(step, Err(StreamFailure::Malformed(_))), "{step:?}");
    assert!(out.is_empty());
}

#[test]
fn a_later_choice_carries_its_index() {
    let mut chat = ChatStream::new(frames(false).choice(2), false, ReasoningField::Both);
    let mut out = BytesMut::new();
    let step = chat.on_line(
        br#"{"message":{"content":"x"},"done":true,"done_reason":"stop"}"#,
        &mut out,
    );
    assert!(matches!(step, Ok(Step::Done(_))));
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches(r#"{"index":2,"delta":"#).count(), 2, "{text}");
    assert!(
        !text.contains("[DONE]"),
        "a choice does not end the stream: {text}"
    );
}
