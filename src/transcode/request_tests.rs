use super::*;
use crate::openai::request::parse_json;

fn map(body: &str) -> Result<(serde_json::Value, ResponseSettings), Error> {
    let req: ChatCompletionRequest = parse_json(body.as_bytes())?;
    let (ollama, settings) = map_chat_request(req, 16)?;
    let json = serde_json::to_value(&ollama).map_err(|e| Error::invalid(e.to_string(), ""))?;
    Ok((json, settings))
}

fn param_of(body: &str) -> Option<String> {
    match map(body) {
        Err(Error::InvalidRequest { param, .. }) => param,
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[test]
fn sampling_options_only_when_given() {
    let (json, settings) = map(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["options"], serde_json::json!({}));
    assert_eq!(json["stream"], true);
    assert!(!settings.stream && !settings.include_usage);
    let (json, settings) = map(
        r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true},
            "temperature":0.2,"top_p":0.9,"max_tokens":5,"max_completion_tokens":7,"stop":"END",
            "seed":3,"frequency_penalty":0.1,"presence_penalty":-0.1,"logprobs":true,"top_logprobs":2,
            "response_format":{"type":"json_object"},"reasoning_effort":"none","unknown_field":{"a":1}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        json["options"],
        serde_json::json!({"temperature":0.2,"top_p":0.9,"num_predict":7,"stop":["END"],"seed":3,
                           "frequency_penalty":0.1,"presence_penalty":-0.1})
    );
    assert_eq!(
        (json["format"].clone(), json["think"].clone()),
        (serde_json::json!("json"), serde_json::json!(false))
    );
    assert_eq!(
        (json["logprobs"].clone(), json["top_logprobs"].clone()),
        (serde_json::json!(true), serde_json::json!(2))
    );
    assert!(settings.stream && settings.include_usage && settings.logprobs);
}

#[test]
fn messages_parts_images_tools_and_history() {
    let (json, _) = map(
        r#"{"model":"m","messages":[
            {"role":"developer","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"what is"},{"type":"text","text":"this?"},
                {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
                "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"sunny"}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let m = &json["messages"];
    assert_eq!(
        m[0],
        serde_json::json!({"role":"system","content":"be brief"})
    );
    assert_eq!(
        m[1],
        serde_json::json!({"role":"user","content":"what is\nthis?","images":["AAAA"]})
    );
    assert_eq!(
        m[2]["tool_calls"],
        serde_json::json!([{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}])
    );
    assert_eq!(
        m[3],
        serde_json::json!({"role":"tool","content":"sunny","tool_name":"get_weather","tool_call_id":"call_1"})
    );
}

#[test]
fn tool_choice_selects_tools() {
    let tools = r#""tools":[{"type":"function","function":{"name":"a","parameters":{"type":"object"}}},
                            {"type":"function","function":{"name":"b"}}]"#;
    let names = |choice: &str| {
        let body = format!(r#"{{"model":"m","messages":[],{tools}{choice}}}"#);
        let (json, _) = map(&body).unwrap_or_else(|e| panic!("{e}"));
        json.get("tools")
            .and_then(|t| t.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|t| {
                t["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(names(""), ["a", "b"]);
    assert_eq!(names(r#","tool_choice":"auto""#), ["a", "b"]);
    assert_eq!(names(r#","tool_choice":"required""#), ["a", "b"]);
    assert!(names(r#","tool_choice":"none""#).is_empty());
    assert_eq!(
        names(r#","tool_choice":{"type":"function","function":{"name":"b"}}"#),
        ["b"]
    );
    let (json, _) =
        map(&format!(r#"{{"model":"m","messages":[],{tools}}}"#)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        json["tools"][0]["function"]["parameters"],
        serde_json::json!({"type":"object"})
    );
}

#[test]
fn bad_requests_name_their_field() {
    let cases = [
        (
            r#"{"model":"m","messages":[{"role":"user","content":3}]}"#,
            "messages[0].content",
        ),
        (
            r#"{"model":"m","messages":[],"temperature":"hot"}"#,
            "temperature",
        ),
        (r#"{"model":5,"messages":[]}"#, "model"),
        (
            r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#,
            "messages[0].content[0].image_url",
        ),
        (
            r#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}"#,
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            r#"{"model":"m","messages":[],"tool_choice":"sometimes"}"#,
            "tool_choice",
        ),
        (
            r#"{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":{"type":"function","function":{"name":"z"}}}"#,
            "tool_choice.function.name",
        ),
        (
            r#"{"model":"m","messages":[],"response_format":{"type":"yaml"}}"#,
            "response_format.type",
        ),
        (
            r#"{"model":"m","messages":[],"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}"#,
            "response_format.json_schema.schema",
        ),
        (
            r#"{"model":"m","messages":[],"reasoning_effort":"max"}"#,
            "reasoning_effort",
        ),
        (r#"{"model":"m","messages":[],"n":0}"#, "n"),
        (r#"{"model":"m","messages":[],"n":17}"#, "n"),
        (
            r#"{"model":"m","messages":[],"temperature":2.5}"#,
            "temperature",
        ),
        (r#"{"model":"m","messages":[],"top_p":-0.1}"#, "top_p"),
        (
            r#"{"model":"m","messages":[],"presence_penalty":3}"#,
            "presence_penalty",
        ),
        (
            r#"{"model":"m","messages":[],"frequency_penalty":-2.1}"#,
            "frequency_penalty",
        ),
        (
            r#"{"model":"m","messages":[],"top_logprobs":21}"#,
            "top_logprobs",
        ),
        (
            r#"{"model":"m","messages":[],"stop":["a","b","c","d","e"]}"#,
            "stop",
        ),
        (r#"{"model":"m","messages":[],"n":"two"}"#, "n"),
        (
            r#"{"model":"m","messages":[],"tools":[{"type":"retrieval","function":{"name":"a"}}]}"#,
            "tools[0].type",
        ),
    ];
    for (body, param) in cases {
        assert_eq!(param_of(body).as_deref(), Some(param), "{body}");
    }
    assert_eq!(param_of("{\"model\": "), None);
    assert_eq!(param_of(r#"{"model":"m","messages":[]} trailing"#), None);
    assert_eq!(param_of("{}").as_deref(), Some("model"));
    assert_eq!(
        param_of(r#"{"model":"m","messages":[{"content":"x"}]}"#).as_deref(),
        Some("messages[0].role")
    );
}

#[test]
fn http_image_urls_are_refused_with_a_clear_message() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":"http://x/y.png"}]}]}"#;
    match map(body) {
        Err(Error::InvalidRequest { message, .. }) => {
            assert!(message.contains("only base64 data URLs"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}
