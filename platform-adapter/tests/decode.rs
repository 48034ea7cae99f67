//! Each way a message can break the contract, judged the same by the Rust decoder and the
//! committed JSON Schema.

use std::path::PathBuf;

use platform_adapter::events::{DecodeErrorKind, InboundPayload, decode_inbound, limits};
use serde_json::{Value, json};

fn example(event_type: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/inbound")
        .join(format!("{event_type}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("example")).expect("json")
}

fn schema_accepts(event_type: &str, message: &Value) -> bool {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schema/inbound")
        .join(format!("{event_type}.schema.json"));
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("json");
    jsonschema::validator_for(&schema)
        .expect("compile")
        .is_valid(message)
}

fn kind_of(message: &Value) -> DecodeErrorKind {
    decode_inbound(&serde_json::to_vec(message).expect("bytes"))
        .expect_err("must be rejected")
        .kind
}

#[test]
fn not_json_and_not_an_object_are_malformed() {
    let error = decode_inbound(b"{\"id\": ").expect_err("rejected");
    assert_eq!(error.kind, DecodeErrorKind::Malformed);
    assert!(error.reason.contains("not JSON"), "{}", error.reason);
    assert_eq!(kind_of(&json!([1, 2])), DecodeErrorKind::Malformed);
}

#[test]
fn unknown_types_and_versions_are_named() {
    let mut message = example("post.created");
    message["type"] = json!("post.exploded");
    let error =
        decode_inbound(&serde_json::to_vec(&message).expect("bytes")).expect_err("rejected");
    assert_eq!(error.kind, DecodeErrorKind::UnknownType);
    assert!(error.reason.contains("post.exploded"));

    let mut message = example("post.created");
    message["schema_version"] = json!(2);
    assert_eq!(kind_of(&message), DecodeErrorKind::UnsupportedVersion);
    assert!(!schema_accepts("post.created", &message));
}

#[test]
fn schema_violations_name_the_field() {
    let mut message = example("post.created");
    message["data"]
        .as_object_mut()
        .expect("object")
        .remove("visibility");
    let error =
        decode_inbound(&serde_json::to_vec(&message).expect("bytes")).expect_err("rejected");
    assert_eq!(error.kind, DecodeErrorKind::SchemaViolation);
    assert!(error.reason.contains("visibility"), "{}", error.reason);
    assert!(!schema_accepts("post.created", &message));

    let mut message = example("post.created");
    message["surprise"] = json!(true);
    assert_eq!(kind_of(&message), DecodeErrorKind::SchemaViolation);
    assert!(!schema_accepts("post.created", &message));

    let mut message = example("post.created");
    message["data"]["visibility"] = json!("friends");
    assert_eq!(kind_of(&message), DecodeErrorKind::SchemaViolation);
    assert!(!schema_accepts("post.created", &message));

    let mut message = example("post.created");
    message["id"] = json!("");
    assert_eq!(kind_of(&message), DecodeErrorKind::SchemaViolation);
    assert!(!schema_accepts("post.created", &message));
}

#[test]
fn bounds_are_enforced_by_both_the_types_and_the_schema() {
    let base = example("post.created");
    let at_limit = {
        let mut m = base.clone();
        m["data"]["text"] = json!("é".repeat(limits::TEXT));
        m
    };
    assert!(decode_inbound(&serde_json::to_vec(&at_limit).expect("bytes")).is_ok());
    assert!(schema_accepts("post.created", &at_limit));

    let mut cases = Vec::new();
    let mut m = base.clone();
    m["data"]["text"] = json!("é".repeat(limits::TEXT + 1));
    cases.push(("text", m));
    let mut m = base.clone();
    let media = m["data"]["media"][0].clone();
    m["data"]["media"] = Value::Array(vec![media; limits::MEDIA + 1]);
    cases.push(("media", m));
    let mut m = base.clone();
    m["data"]["hashtags"] = Value::Array(vec![json!("tag"); limits::HASHTAGS + 1]);
    cases.push(("hashtags", m));
    let mut m = base.clone();
    m["data"]["mentions"] = json!([{"handle": "babbage@mathstodon.example"}]);
    cases.push(("mentions", m));
    let mut m = base.clone();
    m["data"]["author_id"] = json!("u".repeat(129));
    cases.push(("author_id", m));
    for (field, message) in cases {
        let error = decode_inbound(&serde_json::to_vec(&message).expect("bytes")).expect_err(field);
        assert_eq!(error.kind, DecodeErrorKind::SchemaViolation, "{field}");
        assert!(error.reason.contains(field), "{field}: {}", error.reason);
        assert!(
            !schema_accepts("post.created", &message),
            "schema accepted {field}"
        );
    }
}

#[test]
fn a_post_decodes_into_typed_fields() {
    let event = decode_inbound(&serde_json::to_vec(&example("post.created")).expect("bytes"))
        .expect("decodes");
    let InboundPayload::PostCreated(post) = event.payload else {
        panic!("wrong payload");
    };
    assert_eq!(post.author_id.as_str(), "u_1842");
    assert_eq!(event.order_key.as_str(), "u_1842");
    assert_eq!(post.media.len(), 1);
}
